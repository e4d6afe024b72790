"""The Content-Security-Policy is on in the browser: inline script never runs, and the browser says
so on the console in the words the browser fixtures watch for (they fail any test that breaks it)."""

import pytest

pytestmark = pytest.mark.e2e


def test_an_injected_inline_script_is_refused_and_reported(browser, live_server):
    context = browser.new_context(base_url=live_server)
    page = context.new_page()
    messages = []
    page.on("console", lambda message: messages.append(message.text))
    response = page.goto("/login")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    page.evaluate("""() => { const s = document.createElement('script');
                             s.textContent = 'window.injected = 1'; document.body.appendChild(s); }""")
    page.wait_for_timeout(200)
    assert page.evaluate("() => window.injected") is None
    assert any("Content Security Policy" in text for text in messages), messages
    context.close()
