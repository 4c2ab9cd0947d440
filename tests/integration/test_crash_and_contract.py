"""A crashed bridge loses nothing and duplicates nothing, alone or as one of three processes
sharing the work; any Avro library reads the topics.

Outcomes are judged by the systems' APIs and the F&O emulator's write counters (see
``tests/support/scenario.py``), never by bridge code.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from bridge.setup import run_setup
from tests.integration.conftest import Stack, free_port, running_bridge
from tests.support.bridge_process import bridge_processes
from tests.support.expectations import customer_of_account
from tests.support.kafka_probe import (
    avro_schemas,
    decode_change_event,
    published_event_ids,
    read_topic,
)
from tests.support.ledger import Ledger
from tests.support.scenario import accounts_flow, judge_flow
from tests.support.systems import read_customers, register_webhook_copy
from tests.support.waiting import eventually, until
from tests.support.workload import AccountWorkload

CHANGES = int(os.environ.get("P2C_FAULT_CHANGES", "240"))
CONVERGENCE_TIMEOUT = 60 + CHANGES / 10
DOWN_SECONDS = 2.0
STREAM_SECONDS = 10.0  # the workload's writes spread over this long, so the kill is mid-stream


@pytest.mark.timeout(300 + CHANGES // 5)
async def test_sigkill_mid_stream_loses_nothing_and_duplicates_nothing(
    stack: Stack, tmp_path: Path
) -> None:
    await run_setup(stack.settings)
    ledger = Ledger()
    with bridge_processes([stack.settings], tmp_path) as (process,):
        process.start()
        await process.ready()
        started = asyncio.get_running_loop().time()
        workload = AccountWorkload(stack.sales_user, ledger, "Crash")
        writer = asyncio.create_task(workload.run(CHANGES, seconds=STREAM_SECONDS))
        await until(lambda: ledger.total >= CHANGES // 3)
        process.kill()
        killed_at = ledger.total
        await asyncio.sleep(DOWN_SECONDS)  # Sales users go on writing while it is down
        process.start()
        await process.ready()
        restarted_at = ledger.total
        await writer
        await workload.refresh()
        # webhooks to the dead process failed; change tracking caught up, and it cannot see
        # the last updates of a record deleted meanwhile
        verdict = await judge_flow(
            f"SIGKILL at change {killed_at}, restarted at {restarted_at}",
            accounts_flow(stack),
            ledger,
            stack.settings,
            lossy_capture=True,
            timeout=CONVERGENCE_TIMEOUT,
            started=started,
        )
    verdict.check()


@pytest.mark.timeout(300 + CHANGES // 5)
async def test_three_processes_share_the_work_and_survive_one_sigkill(
    stack: Stack, tmp_path: Path
) -> None:
    """Three ``bridge run`` processes with one topic prefix and one consumer group prefix,
    each with its own webhook receiver registered on Dataverse (so every change reaches all
    three); one is SIGKILLed mid-stream and stays dead. The two others must take over its
    partitions (and the pollers, if it led), and every customer must be right and created
    once."""
    webhook = stack.settings.webhook
    settings = [
        stack.settings,
        *(
            stack.with_settings(webhook=webhook.model_copy(update={"port": free_port()}))
            for _ in range(2)
        ),
    ]
    await run_setup(stack.settings)
    for index, other in enumerate(settings[1:], start=2):
        await register_webhook_copy(
            stack.sales_user,
            webhook.url,
            webhook.key.get_secret_value(),
            f"p2c-bridge-{index}",
            url=other.webhook.url,
        )
    ledger = Ledger()
    with bridge_processes(settings, tmp_path) as processes:
        for process in processes:
            process.start()
        for process in processes:
            await process.ready()
        started = asyncio.get_running_loop().time()
        workload = AccountWorkload(stack.sales_user, ledger, "Shared")
        writer = asyncio.create_task(workload.run(CHANGES, seconds=STREAM_SECONDS))
        await until(lambda: ledger.total >= CHANGES // 3)
        processes[1].kill()
        killed_at = ledger.total
        await writer
        await workload.refresh()
        verdict = await judge_flow(
            f"3 processes, one SIGKILLed at change {killed_at}",
            accounts_flow(stack),
            ledger,
            stack.settings,
            lossy_capture=False,
            timeout=CONVERGENCE_TIMEOUT,
            started=started,
        )
    topic = f"{stack.settings.kafka.topic_prefix}.sales.account"
    published = await published_event_ids(stack.settings.kafka.bootstrap_servers, topic)
    verdict.notes.append(
        f"{published.total()} events on {topic} for {len(published)} record versions "
        "(each process publishes what its receiver and poller see)"
    )
    verdict.check()


async def test_an_independent_avro_library_decodes_the_topic(stack: Stack) -> None:
    ledger = Ledger()
    async with running_bridge(stack.settings):
        workload = AccountWorkload(stack.sales_user, ledger, "Contract Check")
        await workload.run(1)
        (number,) = ledger.keys
        account = ledger.keys[number].incarnations[0].final
        wanted = customer_of_account(account)

        async def in_fno() -> bool:
            customer = (await read_customers(stack.fno_user)).get(number)
            return customer is not None and all(customer.get(k) == v for k, v in wanted.items())

        await eventually(in_fno)
    topic = f"{stack.settings.kafka.topic_prefix}.sales.account"
    records = await read_topic(stack.settings.kafka.bootstrap_servers, topic)
    assert records, f"nothing on {topic}"
    record = records[0]
    datum = decode_change_event(record.value, avro_schemas())
    assert datum["source"]["record_id"] == account["accountid"]
    assert datum["after"]["accountnumber"] == number
    assert record.key == account["accountid"].encode()
