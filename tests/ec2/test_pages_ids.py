import pytest

from ec2gw.ec2 import ids, pages
from ec2gw.protocol.errors import EC2Error

ITEMS = list(range(23))


def test_pages_walk_the_whole_list_once():
    request = {"Filters": [{"Name": "x", "Values": ["1"]}], "MaxResults": 5}
    seen, token = [], None
    while True:
        chunk, token = pages.page(ITEMS, {**request, "NextToken": token})
        seen += chunk
        if token is None:
            break
    assert seen == ITEMS


def test_no_max_results_means_everything():
    assert pages.page(ITEMS, {}) == (ITEMS, None)


def test_token_is_bound_to_the_query():
    _, token = pages.page(ITEMS, {"MaxResults": 5, "Owners": ["self"]})
    with pytest.raises(EC2Error) as err:
        pages.page(ITEMS, {"MaxResults": 5, "Owners": ["amazon"], "NextToken": token})
    assert err.value.code == "InvalidPaginationToken"
    for junk in ("garbage", "eyJvIjogLTF9", "!!!"):
        with pytest.raises(EC2Error):
            pages.page(ITEMS, {"MaxResults": 5, "NextToken": junk})


@pytest.mark.parametrize("bad", [0, 4, 1001, -1])
def test_max_results_bounds(bad):
    with pytest.raises(EC2Error) as err:
        pages.page(ITEMS, {"MaxResults": bad})
    assert err.value.code == "InvalidParameterValue"


def test_ids_round_trip_and_errors():
    assert ids.INSTANCE.encode(42) == "i-0000002a"
    assert ids.INSTANCE.decode("i-0000002a") == 42
    assert ids.INSTANCE.decode("i-0000000000000002a") == 42
    for bad in ("i-2a", "ami-0000002a", "i-0000002A", "", "i-ffffffff", "i-0000002a "):
        with pytest.raises(EC2Error) as err:
            ids.INSTANCE.decode(bad)
        assert err.value.code == "InvalidInstanceID.Malformed"
    assert ids.IMAGE.missing(["ami-00000001"]).code == "InvalidAMIID.NotFound"
