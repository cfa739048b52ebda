# The README's example test, run as a user's own suite by test_plugin_in_a_suite.py.
import re

import pytest

from ussdsim import ApiError, Client
from ussdsim.pytest_plugin import Subscribers


def test_a_password_by_ussd_expires(ussdsim: Client, ussdsim_subscribers: Subscribers) -> None:
    msisdn = ussdsim_subscribers.new(balance_kop=5000)
    dialog = ussdsim.dial(msisdn, "*111*25#")
    assert dialog.end and "SMS" in dialog.text
    sms = ussdsim.inbox(msisdn).wait_for(sender="3339", matches=r"\d{6}", timeout=5)
    code = re.findall(r"\d{6}", sms["text"])[0]
    ussdsim.clock.advance(172801)  # 48 h later, on the virtual clock
    with pytest.raises(ApiError, match="bad_password"):
        ussdsim.login(msisdn, code)
