import sys, json, time
from mmdistill.data import load_dataset
from mmdistill.evaluate.protocol import default_protocol, evaluate_real
params = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
params["val_fraction"] = 0.25
tr = load_dataset('spoken-emoji', 'train', None, **params)
te = load_dataset('spoken-emoji', 'val', None, **params)
t = time.time()
res = evaluate_real(tr, te, default_protocol('classification', seeds=[0]))
print(params, 'VAL', res.line(), round(time.time() - t), flush=True)
if len(sys.argv) > 2:
    r = evaluate_real(tr, te, default_protocol('av-retrieval', seeds=[0]))
    print(params, 'VAL', r.line(), round(time.time() - t), flush=True)
