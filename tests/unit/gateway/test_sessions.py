"""USSD session store: the session hash is the truth; the id map and the deadline index beside
it (other cluster slots, written outside the scripts) are hints the sweeper checks."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from gateway.ussd.sessions import DEADLINES_KEY, ClaimStatus, SessionStore, sid_key

pytestmark = pytest.mark.both_backends

ME = "+79161234567"
T0 = 1_700_000_000.0
INPUT_S, LIFETIME_S = 60.0, 180.0


@pytest.fixture
def sessions(redis_client: aioredis.Redis) -> SessionStore:
    return SessionStore(redis_client, input_timeout_s=INPUT_S, lifetime_s=LIFETIME_S)


async def test_a_dialog_claims_saves_and_ends(sessions: SessionStore) -> None:
    session, replaced = await sessions.open_replacing(ME, "*111#", "ru", {"screen": 1}, T0)
    assert replaced is None
    assert await sessions.msisdn_of(session.sid) == ME
    status, claimed = await sessions.claim(session.sid, T0 + 1, T0 + 1)
    assert status is ClaimStatus.OK and claimed is not None and claimed.state == {"screen": 1}
    assert await sessions.save(claimed, {"screen": 2}, "en", T0 + 1)
    ended = await sessions.release(ME, session.sid)
    assert ended is not None and ended.state == {"screen": 2} and ended.lang == "en"
    assert await sessions.msisdn_of(session.sid) is None
    assert await sessions.open_count() == 0


async def test_a_new_dial_replaces_the_old_session_and_its_index_entries(
    sessions: SessionStore,
) -> None:
    old, _ = await sessions.open_replacing(ME, "*111#", "ru", {}, T0)
    new, replaced = await sessions.open_replacing(ME, "*100#", "ru", {}, T0 + 5)
    assert replaced is not None and replaced.sid == old.sid
    assert (await sessions.claim(old.sid, T0 + 6, T0 + 6))[0] is ClaimStatus.GONE
    assert await sessions.msisdn_of(old.sid) is None
    assert await sessions.open_count() == 1
    assert (await sessions.claim(new.sid, T0 + 6, T0 + 6))[0] is ClaimStatus.OK


async def test_sweeper_releases_only_what_timed_out(sessions: SessionStore) -> None:
    quiet, _ = await sessions.open_replacing(ME, "*111#", "ru", {}, T0)
    busy, _ = await sessions.open_replacing("+79161234568", "*111#", "ru", {}, T0)
    _, claimed = await sessions.claim(busy.sid, T0 + 50, T0 + 50)
    assert claimed is not None
    assert await sessions.save(claimed, {}, "ru", T0 + 50)  # input timer restarts
    released = await sessions.sweep_sessions(T0 + INPUT_S)
    assert [s.sid for s in released] == [quiet.sid]
    assert await sessions.msisdn_of(quiet.sid) is None
    assert (await sessions.claim(busy.sid, T0 + 70, T0 + 70))[0] is ClaimStatus.OK
    assert await sessions.open_count() == 1


async def test_an_early_deadline_entry_never_releases_a_live_session(
    sessions: SessionStore, redis_client: aioredis.Redis
) -> None:
    # The entry filed at open stays at the first deadline while steps restart the input timer.
    session, _ = await sessions.open_replacing(ME, "*111#", "ru", {}, T0)
    _, claimed = await sessions.claim(session.sid, T0 + 50, T0 + 50)
    assert claimed is not None
    assert await sessions.save(claimed, {}, "ru", T0 + 50)
    member = f"{ME} {session.sid}"
    await redis_client.zadd(DEADLINES_KEY, {member: T0 + INPUT_S})
    assert await sessions.sweep_sessions(T0 + INPUT_S + 1) == []
    assert await redis_client.zscore(DEADLINES_KEY, member) == T0 + 50 + INPUT_S
    released = await sessions.sweep_sessions(T0 + 50 + INPUT_S)
    assert [s.sid for s in released] == [session.sid]


async def test_stale_index_entries_of_ended_sessions_are_dropped(
    sessions: SessionStore, redis_client: aioredis.Redis
) -> None:
    # An end whose follow-up was lost: the entries outlive the session.
    await redis_client.zadd(DEADLINES_KEY, {f"{ME} deadbeef": T0})
    await redis_client.set(sid_key("deadbeef"), ME)
    live, _ = await sessions.open_replacing(ME, "*111#", "ru", {}, T0)
    assert await sessions.sweep_sessions(T0 + 1) == []
    assert await redis_client.zcard(DEADLINES_KEY) == 1
    assert await sessions.msisdn_of("deadbeef") is None
    assert (await sessions.claim(live.sid, T0 + 2, T0 + 2))[0] is ClaimStatus.OK


async def test_racing_sweepers_release_each_session_once(
    sessions: SessionStore, redis_client: aioredis.Redis
) -> None:
    numbers = [f"+7916000000{i}" for i in range(8)]
    for number in numbers:
        await sessions.open_replacing(number, "*111#", "ru", {}, T0)
    rounds = await asyncio.gather(*(sessions.sweep_sessions(T0 + INPUT_S) for _ in range(4)))
    released = [s.msisdn for batch in rounds for s in batch]
    assert sorted(released) == numbers
    assert await sessions.open_count() == 0


async def test_claim_after_the_deadline_times_out_and_cleans_up(sessions: SessionStore) -> None:
    session, _ = await sessions.open_replacing(ME, "*111#", "ru", {}, T0)
    status, gone = await sessions.claim(session.sid, T0 + INPUT_S, T0 + INPUT_S)
    assert status is ClaimStatus.TIMED_OUT and gone is not None and gone.sid == session.sid
    assert await sessions.open_count() == 0
    assert await sessions.sweep_sessions(T0 + LIFETIME_S) == []
