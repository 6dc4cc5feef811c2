"""logistic-regression: input JSON {"patients": [{"id", "age", "bmi",
"glucose"}]}, output each patient's probability of diabetes."""
import json

from data.diabetes import FEATURES, ROWS
from logreg import LogisticRegression

# Trained once at import: the executor imports the service before forking
# each task, so every task starts with the fitted model.
_X = [r[:3] for r in ROWS]
_Y = [r[3] for r in ROWS]
MODEL = LogisticRegression().fit(_X, _Y)
TRAIN_ACCURACY = MODEL.accuracy(_X, _Y)


def main(input):
    req = json.loads(input)
    out = []
    for p in req["patients"]:
        row = [float(p[f]) for f in FEATURES]
        prob = MODEL.predict_proba(row)
        out.append({"id": p["id"], "probability": round(prob, 4),
                    "diabetic": prob >= 0.5})
    return json.dumps({"predictions": out,
                       "model": {"features": list(FEATURES),
                                 "train_accuracy": round(TRAIN_ACCURACY, 3),
                                 "train_size": len(ROWS)}},
                      sort_keys=True)
