"""Layout at 1366 px and at a phone's 390 px, measured in Chromium (not judged from screenshots):
no page is wider than the window, no card's text overflows its box, no figure wraps mid-number."""

from datetime import timedelta

import pytest

from tests.e2e.conftest import log_in
from tests.fixtures.factories import insert_stamps

pytestmark = pytest.mark.e2e

WIDTHS = (1366, 390)
# Measured in the page: elements wider than the window (tables and charts may scroll sideways inside
# their own scroll box on a phone), card bodies whose content overflows them, figures (dashboard
# numbers, amounts in table cells) laid out on more than one line.
MEASURE = """() => {
  const width = document.documentElement.clientWidth;
  const problems = [];
  const name = (el) => el.tagName.toLowerCase() + (el.dataset.testid ? `[${el.dataset.testid}]` : '') +
                       ' "' + el.textContent.trim().slice(0, 40) + '"';
  if (document.documentElement.scrollWidth > width + 1) problems.push(`page ${document.documentElement.scrollWidth}px > ${width}px`);
  for (const el of document.querySelectorAll('main *')) {
    const scroller = el.closest('.table-responsive, .chart-scroll');  // scrolls sideways inside the page
    if (scroller && scroller !== el) continue;
    const box = el.getBoundingClientRect();
    if (box.width > 0 && (box.right > width + 1 || box.left < -1)) problems.push(`outside the window: ${name(el)}`);
  }
  for (const el of document.querySelectorAll('.card-body')) {
    if (el.scrollWidth > el.clientWidth + 1) problems.push(`card overflows: ${name(el)} ${el.scrollWidth} > ${el.clientWidth}`);
  }
  const figure = /^[+\u2212-]?(Rp)?[\\d.,]+$/;
  for (const el of document.querySelectorAll('.stat, td.text-end')) {
    if (!figure.test(el.textContent.trim())) continue;
    const lines = Math.round(el.getBoundingClientRect().height / parseFloat(getComputedStyle(el).lineHeight));
    const range = document.createRange(); range.selectNodeContents(el);
    const rects = [...range.getClientRects()].filter(r => r.width > 0);
    const tops = new Set(rects.map(r => Math.round(r.top)));
    if (el.textContent.trim() && tops.size > 1) problems.push(`figure on ${tops.size} lines: ${name(el)}`);
    if (el.scrollWidth > el.clientWidth + 1 && !el.closest('.table-responsive, .chart-scroll')) problems.push(`figure cut: ${name(el)}`);
  }
  return problems;
}"""


@pytest.fixture
def big_month(app, factory):
    """Last month's invoices: one WAPU with 11.666 e-Meterai (Rp116.660.000 outstanding), and WAPUs with
    long, similar names."""
    from scm.auth.services import find_active_user
    from scm.billing import services
    from scm.billing.usage import add_months, month_bounds, month_of
    from scm.core.database import unit_of_work
    from scm.core.formatting import today_wib

    big = factory.wapu(1201)
    small = factory.wapu(1202)
    fin = factory.user("DIST_FIN")
    last = add_months(month_of(today_wib()), -1)
    start, _ = month_bounds(last)
    with app.app_context():
        insert_stamps(big["id"], [start + timedelta(seconds=60 * i) for i in range(11_666)])
        insert_stamps(small["id"], [start + timedelta(hours=i) for i in range(1, 30)])
        with unit_of_work():
            services.run_billing(last, None, source="cli")
        with unit_of_work():
            services.issue_drafts(last, find_active_user(fin))
    return {"big": big, "small": small, "fin": fin, "month": f"{last:%Y-%m}"}


PAGES = {
    "DIST_FIN": ["/", "/billing", "/billing/months/{month}", "/billing/invoices", "/billing/aging",
                 "/billing/shortfall?month={month}", "/usage"],
    "DIST_ADMIN": ["/", "/admin/audit", "/admin/jobs", "/admin/users", "/billing/settings", "/quota/accounts",
                   "/wapus/{big[id]}/users", "/wapus/{big[id]}/users/new", "/stand-ins"],
    "DIST_SPV": ["/", "/review/registrations", "/purchase-orders", "/wapus", "/stand-ins"],
    "WAPU_FIN": ["/", "/billing/invoices", "/usage", "/quota"],
    "WAPU_STAFF": ["/", "/purchase-requests", "/purchase-requests/new", "/quota"],
    "WAPU_SPV": ["/", "/api-tokens", "/purchase-requests", "/wapus/{big[id]}/users", "/stand-ins"],
}


@pytest.mark.parametrize("role", sorted(PAGES))
def test_no_page_overflows_at_desktop_and_phone_width(app, big_month, factory, new_page, role):
    email = factory.user(role, wapu_id=big_month["big"]["id"] if role.startswith("WAPU") else None)
    page = new_page()
    log_in(page, email)
    problems = {}
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        for url in PAGES[role]:
            page.goto(url.format(**big_month))
            found = page.evaluate(MEASURE)
            if found:
                problems[f"{width}px {url}"] = found
    assert not problems, problems


def test_the_outstanding_total_past_100_million_stays_on_one_line(app, big_month, factory, new_page):
    page = new_page()
    log_in(page, factory.user("DIST_FIN"))
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        page.goto("/")
        card = page.get_by_test_id("outstanding-total")
        assert card.inner_text().strip() == "Rp116.950.000"
        height = card.evaluate("el => el.getBoundingClientRect().height / parseFloat(getComputedStyle(el).lineHeight)")
        assert round(height) == 1, (width, height)


def test_the_audit_log_fits_a_1366_px_screen(app, big_month, factory, new_page):
    """Every column, IP included, is on screen at 1366 px: nothing hides behind a scroll bar."""
    from scm.core.database import unit_of_work
    from scm.core.services import record_audit

    with app.app_context(), unit_of_work():
        record_audit(None, "usage.import", summary="x" * 300, ref="pemakaian-" + "a" * 100 + ".xlsx",
                     object_type="UsageFile", object_id="f" * 40, actor_label="operator.dengan.nama.panjang@" + "d" * 40)
    page = new_page()
    log_in(page, factory.user("DIST_ADMIN"))
    page.set_viewport_size({"width": 1366, "height": 900})
    page.goto("/admin/audit")
    widths = page.evaluate("""() => {
      const table = document.querySelector('[data-testid=audit-log]');
      return [table.scrollWidth, table.parentElement.clientWidth];
    }""")
    assert widths[0] <= widths[1], widths
    assert page.locator("[data-testid=audit-log] th").last.is_visible()


@pytest.mark.parametrize("role", ["DIST_FIN", "WAPU_FIN"])
def test_chart_text_is_as_large_as_the_small_text_of_the_page(app, big_month, factory, new_page, role):
    page = new_page()
    log_in(page, factory.user(role, wapu_id=big_month["big"]["id"] if role == "WAPU_FIN" else None))
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        page.goto("/")
        sizes = page.evaluate("""() => {
          const small = parseFloat(getComputedStyle(document.querySelector('.small, small')).fontSize);
          return [small, [...document.querySelectorAll('svg.chart')].map(svg => {
            const scale = svg.getBoundingClientRect().width / svg.viewBox.baseVal.width;
            return scale * parseFloat(svg.getAttribute('font-size'));
          })];
        }""")
        small, charts = sizes
        assert charts, "no chart on the dashboard"
        assert all(size >= small - 0.5 for size in charts), (width, small, charts)
        if width >= 1000:  # on a desktop every chart fits its card: nothing to scroll, nothing cut
            cut = page.evaluate("() => [...document.querySelectorAll('.chart-scroll')]"
                                ".filter(box => box.scrollWidth > box.clientWidth + 1).length")
            assert cut == 0, (width, cut)
