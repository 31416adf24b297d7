import sys, json, time
from mmdistill.data import load_dataset
from mmdistill.evaluate.protocol import default_protocol, evaluate_real
params = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
tr = load_dataset('spoken-emoji', 'train', '/work/shared/data', **params)
te = load_dataset('spoken-emoji', 'test', '/work/shared/data', **params)
t = time.time()
res = evaluate_real(tr, te, default_protocol('classification', seeds=[0]))
print(params, res.line(), round(time.time() - t), flush=True)
