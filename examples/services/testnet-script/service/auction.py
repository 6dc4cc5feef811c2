# Sealed-bid (Vickrey) auction, TEEX TestNet style.
# Input: lines "bidder,amount" (amounts in cents). The highest bidder wins and
# pays the second-highest bid; no bid is revealed beyond that.
from teex import *
import json

bids = []
for n, line in enumerate(TEEX_getinput().splitlines(), 1):
    line = line.strip()
    if not line or line.startswith("#"):
        continue
    name, _, amount = line.partition(",")
    if not name or not amount.strip().isdigit():
        raise ValueError("line %d: expected 'bidder,amount'" % n)
    bids.append((int(amount), name.strip()))

if len(bids) < 2:
    TEEX_return(json.dumps({"error": "at least two bids are needed"}))
else:
    # Highest amount first; ties go to the name that sorts first.
    bids.sort(key=lambda b: (-b[0], b[1]))
    winner, price = bids[0][1], bids[1][0]
    TEEX_return(json.dumps({"winner": winner, "price": price,
                            "bidders": len(bids)}, sort_keys=True))
