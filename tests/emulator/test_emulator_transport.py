"""Client-side routing: unmodified gspread, the user identity, real credentials."""

from __future__ import annotations

import pytest
import requests

from sheetcache.emulator import SheetsEmulator, routed_client, routed_session


def test_routed_client_carries_the_user_to_the_server(emu: SheetsEmulator) -> None:
    gc = routed_client(emu.url, user="alice@example.com", timeout=10)
    try:
        sh = gc.create("routed")
        sh.sheet1.update([["hello"]], "A1")
    finally:
        gc.http_client.session.close()
    users = {r.user for r in emu.requests}
    assert users == {"alice@example.com"}
    assert {r.api for r in emu.requests} == {"drive", "sheets"}
    assert emu.get_values(sh.id) == [["hello"]]


def test_routed_session_rewrites_only_googles_origins(emu: SheetsEmulator) -> None:
    session = routed_session(emu.url + "/", user="bob")
    try:
        response = session.get("https://sheets.googleapis.com/v4/spreadsheets/nope")
        assert response.status_code == 404
        assert response.json()["error"]["status"] == "NOT_FOUND"
    finally:
        session.close()
    assert emu.requests[-1].path == "/v4/spreadsheets/nope"
    assert emu.requests[-1].user == "bob"


def test_requests_without_a_token_are_googles_401(emu: SheetsEmulator) -> None:
    with requests.Session() as plain:
        response = plain.get(f"{emu.url}/v4/spreadsheets/anything")
    assert response.status_code == 401
    assert response.json()["error"]["status"] == "UNAUTHENTICATED"


def test_a_real_service_account_credential_is_routed_too(emu: SheetsEmulator) -> None:
    rsa = pytest.importorskip("cryptography.hazmat.primitives.asymmetric.rsa")
    serialization = pytest.importorskip("cryptography.hazmat.primitives.serialization")
    from google.oauth2.service_account import Credentials

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    info = {
        "type": "service_account",
        "project_id": "emulated",
        "private_key_id": "1",
        "private_key": pem,
        "client_email": "robot@emulated.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": "https://oauth2.googleapis.com/token",
    }
    credentials = Credentials.from_service_account_info(
        info, scopes=["https://www.googleapis.com/auth/spreadsheets"]
    )
    gc = routed_client(emu.url, credentials=credentials)
    try:
        assert gc.create("as a robot").title == "as a robot"
    finally:
        gc.http_client.session.close()
    token_requests = [r for r in emu.requests if r.api == "oauth"]
    assert token_requests and token_requests[0].status == 200
    assert {r.user for r in emu.requests if r.api != "oauth"} == {
        "robot@emulated.iam.gserviceaccount.com"
    }
