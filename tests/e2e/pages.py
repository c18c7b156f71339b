"""Steps that several browser tests take the same way."""

from __future__ import annotations


def attach_console(page, base: str, gs, *, username: str, password: str) -> None:
    """Log in as ``username`` on the experimenter attach page, type ``gs``'s experimenter
    code (lower case: codes are case-insensitive) and land on its console."""
    page.goto(f"{base}/group/session/attach/experimenter/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.locator("input[type=submit], button[type=submit]").first.click()
    page.fill("#id_code", gs.experimenter_code.lower())
    page.get_by_role("button", name="Attach").click()
    page.wait_for_url(f"**/group/session/status/{gs.pk}/")
