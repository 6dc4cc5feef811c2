# Cohort statistics, TEEX TestNet style, over a data provider's dataset.
# Input: "min_age,max_age". Data 0: CSV lines "patient,age,systolic" (the
# hospital's records, readable only inside the enclave for this task).
# Output: how many patients fall in the range and their mean systolic
# pressure; a range with fewer than 3 patients is refused, so no single
# record can be singled out.
from teex import *
import json

lo, _, hi = TEEX_getinput().strip().partition(",")
if not lo.strip().isdigit() or not hi.strip().isdigit():
    raise ValueError("input: expected 'min_age,max_age'")
lo, hi = int(lo), int(hi)

values = []
for n, line in enumerate(TEEX_getdata(0).splitlines(), 1):
    line = line.strip()
    if not line or line.startswith("#") or line.startswith("patient"):
        continue
    fields = line.split(",")
    if len(fields) != 3:
        raise ValueError("dataset line %d: expected 3 fields" % n)
    age, systolic = int(fields[1]), int(fields[2])
    if lo <= age <= hi:
        values.append(systolic)

if len(values) < 3:
    TEEX_return(json.dumps({"error": "fewer than 3 patients in the range"}))
else:
    mean = round(sum(values) / len(values), 1)
    TEEX_return(json.dumps({"patients": len(values), "mean_systolic": mean},
                           sort_keys=True))
