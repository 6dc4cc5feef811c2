"""risk-score: input is JSON {"applicants": [...]}, output the scores."""
import json

from risk.model import score


def main(input):
    request = json.loads(input)
    results = [score(a) for a in request["applicants"]]
    summary = {
        "count": len(results),
        "approved": sum(1 for r in results if r["grade"] in ("A", "B", "C")),
    }
    return json.dumps({"results": results, "summary": summary}, sort_keys=True)
