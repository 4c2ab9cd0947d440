"""Content-IDs of a client ``$batch``: unique in the whole batch, references kept in their own
change set."""

from __future__ import annotations

import re

from bridge.http.batch import BatchRequest, encode_batch

ROOT = "http://dv/api/data/v9.2"


def product_with_price(number: str) -> list[BatchRequest]:
    return [
        BatchRequest("POST", f"{ROOT}/products", {"productnumber": number}),
        BatchRequest("POST", f"{ROOT}/productpricelevels", {"productid@odata.bind": "$1"}),
    ]


def test_each_change_set_names_its_own_earlier_request_whatever_its_place() -> None:
    body, _ = encode_batch([product_with_price("A"), product_with_price("B")])
    text = body.decode()
    assert re.findall(r"Content-ID: (\d+)", text) == ["1", "2", "3", "4"]
    assert re.findall(r'"productid@odata.bind":"(\$\d+)"', text) == ["$1", "$3"]
