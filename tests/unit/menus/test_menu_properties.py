"""Random sessions over the default profile: no crash, every screen fits, state survives JSON."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from menus.action_specs.catalogue import ACTIONS
from menus.engine import ActionRequest, Screen, SessionState, Step, answer, resume, start
from menus.loader import DEFAULT_PROFILE_DIR, load_menus
from menus.schema import VarSpec
from sms.encoding import ussd_fits

MENUS = load_menus([DEFAULT_PROFILE_DIR])

typed_answers = st.one_of(
    st.sampled_from(["0", "00", "99", "1", "2", "3", "4", "5", "25", "828", "Secr3t!", ""]),
    st.text(max_size=200),
)


def values_of(spec: VarSpec) -> st.SearchStrategy[object]:
    if spec.kind == "money":
        return st.integers(min_value=-9_999_999_999, max_value=9_999_999_999)
    if spec.kind == "phone":
        return st.from_regex(r"\+79[0-9]{9}", fullmatch=True)
    return st.text(max_size=spec.max_len or 10)


def check(step: Step) -> None:
    data = json.loads(json.dumps(step.state.to_json()))
    assert SessionState.from_json(data) == step.state
    if isinstance(step, Screen):
        assert ussd_fits(step.text), step.text


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(sorted(MENUS.menus)),
    st.sampled_from(["ru", "en"]),
    st.lists(st.sampled_from(["25", "828", "1", "3", "7", "99"]), max_size=3),
    st.lists(typed_answers, max_size=12),
    st.data(),
)
def test_random_sessions(
    menu_id: str, lang: str, prefilled: list[str], answers: list[str], data: st.DataObject
) -> None:
    menu = MENUS.get(menu_id)
    step = start(menu, lang=lang, prefilled=prefilled, vars={"msisdn": "+79161234567"})
    check(step)
    typed = iter(answers)
    for _ in range(len(answers) + 10):
        if isinstance(step, ActionRequest):
            spec = ACTIONS[step.name]
            outcome = data.draw(st.sampled_from([*sorted(spec.outcomes), "unexpected"]))
            values = {name: data.draw(values_of(v)) for name, v in spec.values.items()}
            step = resume(menu, step.state, outcome, values)
        elif step.end:
            break
        else:
            next_answer = next(typed, None)
            if next_answer is None:
                break
            step = answer(menu, step.state, next_answer)
        check(step)
