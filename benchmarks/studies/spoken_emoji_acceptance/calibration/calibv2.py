import sys, json, time
from mmdistill.data import load_dataset
from mmdistill.evaluate.protocol import default_protocol, evaluate_real
params = json.loads(sys.argv[1])
params["val_fraction"] = 0.25
tr = load_dataset('spoken-emoji', 'train', None, **params)
te = load_dataset('spoken-emoji', 'val', None, **params)
t = time.time()
if 'cls' in sys.argv[2:]:
    res = evaluate_real(tr, te, default_protocol('classification', seeds=[0]))
    print(params, 'VAL', res.line(), round(time.time() - t), flush=True)
for ov in sys.argv[2:]:
    if ov == 'cls':
        continue
    r = evaluate_real(tr, te, default_protocol('av-retrieval', seeds=[0], **json.loads(ov)))
    print(params, ov, 'VAL', r.line(), round(time.time() - t), flush=True)
