"""A bounded soak: concurrent mixed requests with ClientToken retries, on loopback.

Shows no duplicate VMs, no lost responses and no memory growth across rounds.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

ROUNDS = 3
TOKENS_PER_ROUND = 6
RETRIES_PER_TOKEN = 4
READS_PER_ROUND = 60


def _rss_mib() -> float:
    with open(f"/proc/{os.getpid()}/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def test_concurrent_mixed_requests_with_retried_tokens(gateway):
    clients = [gateway.client() for _ in range(8)]
    ami = clients[0].describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    reads = [
        lambda c: c.describe_regions()["Regions"],
        lambda c: c.describe_images(Owners=["amazon"])["Images"],
        lambda c: c.describe_instances()["Reservations"],
        lambda c: c.describe_availability_zones()["AvailabilityZones"],
    ]
    launched: dict[str, set[str]] = {}
    rss: list[float] = []
    answered = 0
    with ThreadPoolExecutor(max_workers=len(clients)) as pool:
        for round_ in range(ROUNDS):
            jobs = []
            for t in range(TOKENS_PER_ROUND):
                token = f"soak-{round_}-{t}"
                for r in range(RETRIES_PER_TOKEN):
                    client = clients[(t + r) % len(clients)]
                    jobs.append(
                        (
                            token,
                            pool.submit(
                                client.run_instances,
                                ImageId=ami,
                                InstanceType="t3.nano",
                                MinCount=1,
                                MaxCount=1,
                                ClientToken=token,
                            ),
                        )
                    )
            for i in range(READS_PER_ROUND):
                jobs.append((None, pool.submit(reads[i % len(reads)], clients[i % len(clients)])))
            for token, future in jobs:
                result = future.result(timeout=120)  # a lost response would time out here
                answered += 1
                if token:
                    ids = frozenset(i["InstanceId"] for i in result["Instances"])
                    launched.setdefault(token, set()).add(ids)
            rss.append(_rss_mib())
    assert answered == ROUNDS * (TOKENS_PER_ROUND * RETRIES_PER_TOKEN + READS_PER_ROUND)
    # every retry of a token got the very same single instance: no duplicates
    assert all(len(answers) == 1 and len(next(iter(answers))) == 1 for answers in launched.values())
    instance_ids = [i for answers in launched.values() for i in next(iter(answers))]
    mine = clients[0].describe_instances(Filters=[{"Name": "client-token", "Values": ["soak-*"]}])[
        "Reservations"
    ]
    assert sorted(i["InstanceId"] for r in mine for i in r["Instances"]) == sorted(instance_ids)
    assert rss[-1] - rss[0] < 30, rss  # flat memory once warmed up
    clients[0].terminate_instances(InstanceIds=instance_ids)
