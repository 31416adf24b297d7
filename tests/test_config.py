from dataclasses import dataclass, field

import pytest

from mmdistill.config import apply_overrides, from_dict, load_config
from mmdistill.errors import ConfigError


@dataclass
class Inner:
    epochs: int = 3
    lr: float = 0.1


@dataclass
class Outer:
    name: str = "x"
    flag: bool = False
    inner: Inner = field(default_factory=Inner)
    seeds: list[int] = field(default_factory=lambda: [0])
    opt: str | None = None


def test_from_dict_nested_and_coercion():
    cfg = from_dict(Outer, {"name": "a", "inner": {"epochs": 5, "lr": 1}, "seeds": [1, 2]})
    assert cfg.inner.epochs == 5 and isinstance(cfg.inner.lr, float) and cfg.seeds == [1, 2]


def test_unknown_key_names_key_and_file():
    with pytest.raises(ConfigError, match="unknown key.*bogus"):
        from_dict(Outer, {"bogus": 1}, where="my.yaml")
    with pytest.raises(ConfigError, match=r"my.yaml.inner: unknown key\(s\) epoch\b"):
        from_dict(Outer, {"inner": {"epoch": 1}}, where="my.yaml")


def test_wrong_types_rejected():
    with pytest.raises(ConfigError, match="expected true/false"):
        from_dict(Outer, {"flag": "yes"})
    with pytest.raises(ConfigError, match="expected an integer"):
        from_dict(Outer, {"inner": {"epochs": "many"}})


def test_overrides_parse_yaml_values(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("name: file\ninner: {epochs: 2}\n")
    cfg = load_config(Outer, p, ["inner.lr=1e-3", "flag=true", "seeds=[3,4]"])
    assert cfg.name == "file" and cfg.inner.epochs == 2 and cfg.inner.lr == 1e-3 and cfg.flag and cfg.seeds == [3, 4]
    assert apply_overrides({}, ["a.b.c=1"]) == {"a": {"b": {"c": 1}}}
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        apply_overrides({}, ["novalue"])
