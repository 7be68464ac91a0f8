"""Drive v3 endpoints gspread uses (files, permissions, comments, export, CSV import) and an
OAuth token endpoint, so a real service-account credential can be routed to the emulator.
"""

from __future__ import annotations

import base64
import csv
import datetime as _dt
import hashlib
import io
import re
import secrets
from typing import Any
from urllib.parse import parse_qs

import orjson

from sheetcache.emulator._common import Call, Raw
from sheetcache.emulator._errors import drive_error, drive_file_not_found
from sheetcache.emulator._fields import apply_mask, parse_mask
from sheetcache.emulator._state import SHEETS_MIME, DriveFile, Spreadsheet, new_file_id
from sheetcache.emulator._values import FORMATTED, parse_user_entered

__all__ = [
    "comments_create",
    "comments_list",
    "files_copy",
    "files_create",
    "files_delete",
    "files_export",
    "files_get",
    "files_list",
    "files_update",
    "import_csv",
    "permissions_create",
    "permissions_delete",
    "permissions_list",
    "permissions_update",
    "token",
    "user_from_token",
]

_DEFAULT_FILE_FIELDS = ("kind", "id", "name", "mimeType")


def _iso(timestamp: float) -> str:
    moment = _dt.datetime.fromtimestamp(timestamp, _dt.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _file_json(file: DriveFile) -> dict[str, Any]:
    out: dict[str, Any] = {
        "kind": "drive#file",
        "id": file.id,
        "name": file.title,
        "mimeType": file.mime_type,
        "trashed": False,
        "createdTime": _iso(file.created),
        "modifiedTime": _iso(file.modified),
        "owners": [{"kind": "drive#user", "displayName": file.owner, "emailAddress": file.owner}],
    }
    if file.parents:
        out["parents"] = list(file.parents)
    return out


def _fields(call: Call, value: dict[str, Any], default: tuple[str, ...]) -> dict[str, Any]:
    fields = call.param("fields")
    if not fields:
        return {k: value[k] for k in default if k in value}
    try:
        mask = parse_mask(fields)
    except ValueError:
        raise drive_error(400, "invalidParameter", f"Invalid field selection {fields}") from None
    return apply_mask(value, mask)  # type: ignore[no-any-return]


def _visible(call: Call, file_id: str) -> DriveFile:
    file = call.store.files.get(file_id)
    if file is None or not file.can_read(call.user):
        raise drive_file_not_found(file_id)
    return file


def _writable(call: Call, file_id: str) -> DriveFile:
    file = _visible(call, file_id)
    if not file.can_write(call.user):
        raise drive_error(
            403,
            "insufficientFilePermissions",
            "The user does not have sufficient permissions for this file.",
        )
    return file


# --- files ---------------------------------------------------------------------------------


def files_create(call: Call) -> dict[str, Any]:
    body = call.body if isinstance(call.body, dict) else {}
    mime = body.get("mimeType") or "application/octet-stream"
    name = body.get("name")
    if mime == SHEETS_MIME:
        file = call.store.create_spreadsheet(name or "Untitled spreadsheet", owner=call.user)
    else:
        file = DriveFile(new_file_id(), name or "Untitled", mime, call.user)
        call.store.files[file.id] = file
        call.store.changed()
    file.parents = [str(p) for p in body.get("parents") or []]
    return _fields(call, _file_json(file), _DEFAULT_FILE_FIELDS)


def files_get(call: Call, file_id: str) -> dict[str, Any]:
    return _fields(call, _file_json(_visible(call, file_id)), _DEFAULT_FILE_FIELDS)


def files_update(call: Call, file_id: str) -> dict[str, Any]:
    file = _writable(call, file_id)
    body = call.body if isinstance(call.body, dict) else {}
    if body.get("name"):
        file.name = str(body["name"])
        if file.spreadsheet is not None:
            file.spreadsheet.props["title"] = file.name
    call.store.changed(file)
    return _fields(call, _file_json(file), _DEFAULT_FILE_FIELDS)


def files_delete(call: Call, file_id: str) -> tuple[int, None]:
    _writable(call, file_id)
    del call.store.files[file_id]
    call.store.changed()
    return 204, None


def files_copy(call: Call, file_id: str) -> dict[str, Any]:
    source = _visible(call, file_id)
    body = call.body if isinstance(call.body, dict) else {}
    name = body.get("name") or f"Copy of {source.title}"
    new_id = new_file_id()
    copy = DriveFile(new_id, name, source.mime_type, call.user)
    if source.spreadsheet is not None:
        spreadsheet = Spreadsheet(new_id, name)
        spreadsheet.props = {**orjson.loads(orjson.dumps(source.spreadsheet.props)), "title": name}
        spreadsheet.sheets = [sheet.clone() for sheet in source.spreadsheet.sheets]
        spreadsheet.named_ranges = orjson.loads(orjson.dumps(source.spreadsheet.named_ranges))
        copy.spreadsheet = spreadsheet
    copy.parents = [str(p) for p in body.get("parents") or source.parents]
    call.store.files[new_id] = copy
    call.store.changed()
    return _fields(call, _file_json(copy), _DEFAULT_FILE_FIELDS)


def files_list(call: Call) -> dict[str, Any]:
    query = call.param("q") or ""
    try:
        matcher = _parse_query(query, call.user)
    except ValueError:
        raise drive_error(
            400, "invalid", "Invalid Value", locationType="parameter", location="q"
        ) from None
    try:
        page_size = min(max(int(call.param("pageSize") or 100), 1), 1000)
        offset = int(call.param("pageToken") or 0)
    except ValueError:
        raise drive_error(400, "invalid", "Invalid Value") from None
    files = [
        file for file in call.store.files.values() if file.can_read(call.user) and matcher(file)
    ]
    files.sort(key=lambda f: f.modified, reverse=True)
    page = files[offset : offset + page_size]
    listing: dict[str, Any] = {
        "kind": "drive#fileList",
        "incompleteSearch": False,
        "files": [_file_json(f) for f in page],
    }
    if offset + page_size < len(files):
        listing["nextPageToken"] = str(offset + page_size)
    fields = call.param("fields")
    if not fields:
        listing["files"] = [{k: f[k] for k in _DEFAULT_FILE_FIELDS} for f in listing["files"]]
        return listing
    return _fields(call, listing, ())


def files_export(call: Call, file_id: str) -> Raw:
    file = _visible(call, file_id)
    mime = call.param("mimeType") or ""
    if file.spreadsheet is None or mime not in ("text/csv", "text/tab-separated-values"):
        raise drive_error(400, "badRequest", "The requested conversion is not supported.")
    sheet = file.spreadsheet.sheets[0]
    out = io.StringIO()
    writer = csv.writer(out, delimiter="," if mime == "text/csv" else "\t", lineterminator="\r\n")
    for row in sheet.read(0, sheet.row_count, 0, sheet.col_count, FORMATTED):
        writer.writerow(row)
    return Raw(out.getvalue().encode("utf-8"), mime)


def import_csv(call: Call, file_id: str) -> dict[str, Any]:
    """``PUT /upload/drive/v2/files/{id}?convert=true``: replace the spreadsheet with a CSV,
    values parsed as if typed (gspread's ``import_csv``).
    """
    file = _writable(call, file_id)
    spreadsheet = file.spreadsheet
    if spreadsheet is None:
        raise drive_error(400, "badRequest", "Only spreadsheets can be imported into.")
    text = call.raw_body.decode("utf-8-sig")
    rows = [[parse_user_entered(v) for v in row] for row in csv.reader(io.StringIO(text))]
    first = spreadsheet.sheets[0]
    spreadsheet.sheets = [first]
    spreadsheet.renumber()
    first.replace_rows([])
    first.set_size(max(len(rows), 1), max((len(r) for r in rows), default=1) or 1)
    first.write(0, 0, rows, all(type(v) is str for row in rows for v in row))
    call.store.changed(file)
    return {"kind": "drive#file", "id": file.id, "title": file.title, "mimeType": file.mime_type}


# --- permissions and comments --------------------------------------------------------------


def _owner_permission(file: DriveFile) -> dict[str, Any]:
    digits = str(int(hashlib.sha256(file.owner.encode()).hexdigest(), 16))[:20]
    return {
        "kind": "drive#permission",
        "id": digits,
        "type": "user",
        "role": "owner",
        "emailAddress": file.owner,
        "displayName": file.owner,
    }


def permissions_create(call: Call, file_id: str) -> dict[str, Any]:
    file = _writable(call, file_id)
    body = call.body if isinstance(call.body, dict) else {}
    kind = body.get("type")
    role = body.get("role")
    if kind not in ("user", "group", "domain", "anyone") or not role:
        raise drive_error(400, "invalidSharingRequest", 'Bad Request. User message: ""')
    permission: dict[str, Any] = {
        "kind": "drive#permission",
        "id": "anyoneWithLink" if kind == "anyone" else str(secrets.randbelow(10**20)),
        "type": kind,
        "role": role,
    }
    if kind in ("user", "group"):
        if not body.get("emailAddress"):
            raise drive_error(400, "invalidSharingRequest", "emailAddress is required")
        permission["emailAddress"] = body["emailAddress"]
        if file.allowed is not None:
            file.allowed[str(body["emailAddress"])] = str(role)
    elif kind == "domain":
        permission["domain"] = body.get("domain")
    elif kind == "anyone":
        file.allowed = None
    file.permissions.append(permission)
    call.store.changed(file)
    return _fields(call, permission, ("kind", "id", "type", "role"))


def permissions_list(call: Call, file_id: str) -> dict[str, Any]:
    file = _visible(call, file_id)
    listing = {
        "kind": "drive#permissionList",
        "permissions": [_owner_permission(file), *file.permissions],
    }
    fields = call.param("fields")
    return _fields(call, listing, ("kind", "permissions")) if fields else listing


def permissions_delete(call: Call, file_id: str, permission_id: str) -> tuple[int, None]:
    file = _writable(call, file_id)
    for permission in file.permissions:
        if permission["id"] == permission_id:
            file.permissions.remove(permission)
            if file.allowed is not None and "emailAddress" in permission:
                file.allowed.pop(permission["emailAddress"], None)
            call.store.changed(file)
            return 204, None
    raise drive_error(404, "notFound", f"Permission not found: {permission_id}.")


def permissions_update(call: Call, file_id: str, permission_id: str) -> dict[str, Any]:
    file = _writable(call, file_id)
    body = call.body if isinstance(call.body, dict) else {}
    for permission in file.permissions:
        if permission["id"] == permission_id:
            if body.get("role"):
                permission["role"] = body["role"]
                if file.allowed is not None and "emailAddress" in permission:
                    file.allowed[permission["emailAddress"]] = str(body["role"])
            call.store.changed(file)
            return _fields(call, permission, ("kind", "id", "type", "role"))
    raise drive_error(404, "notFound", f"Permission not found: {permission_id}.")


def comments_list(call: Call, file_id: str) -> dict[str, Any]:
    _visible(call, file_id)
    return {"kind": "drive#commentList", "comments": []}


def comments_create(call: Call, file_id: str) -> dict[str, Any]:
    _writable(call, file_id)
    return {"kind": "drive#comment", "id": secrets.token_hex(8)}


# --- Drive query language (the subset clients use) -----------------------------------------

_QUERY_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")|(?P<op>!=|<=|>=|=|<|>|\(|\))"
    r"|(?P<word>[A-Za-z_][A-Za-z0-9_.]*)|(?P<num>-?\d+(?:\.\d+)?))"
)


def _parse_query(query: str, user: str) -> Any:
    """Compile a Drive ``q`` into a predicate on files.

    Raises:
        ValueError: syntax the emulator does not understand.
    """
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(query):
        match = _QUERY_TOKEN.match(query, pos)
        if not match or match.end() == pos:
            if not query[pos:].strip():
                break
            raise ValueError(query)
        pos = match.end()
        kind = match.lastgroup or ""
        text = match.group(kind)
        if kind == "str":
            text = re.sub(r"\\(.)", r"\1", text[1:-1])
        tokens.append((kind, text))
    if not tokens:
        return lambda file: True
    predicate, rest = _or(tokens, user)
    if rest:
        raise ValueError(query)
    return predicate


def _or(tokens: list[tuple[str, str]], user: str) -> tuple[Any, list[tuple[str, str]]]:
    left, tokens = _and(tokens, user)
    while tokens and tokens[0] == ("word", "or"):
        right, tokens = _and(tokens[1:], user)
        left = (lambda a, b: lambda f: a(f) or b(f))(left, right)
    return left, tokens


def _and(tokens: list[tuple[str, str]], user: str) -> tuple[Any, list[tuple[str, str]]]:
    left, tokens = _term(tokens, user)
    while tokens and tokens[0] == ("word", "and"):
        right, tokens = _term(tokens[1:], user)
        left = (lambda a, b: lambda f: a(f) and b(f))(left, right)
    return left, tokens


def _term(tokens: list[tuple[str, str]], user: str) -> tuple[Any, list[tuple[str, str]]]:
    if tokens[0] == ("word", "not"):
        inner, rest = _term(tokens[1:], user)
        return (lambda f: not inner(f)), rest
    if tokens[0] == ("op", "("):
        inner, rest = _or(tokens[1:], user)
        if not rest or rest[0] != ("op", ")"):
            raise ValueError("unbalanced")
        return inner, rest[1:]
    first, second, third = tokens[0], tokens[1], tokens[2]
    rest = tokens[3:]
    # 'value' in field  /  field in 'value' (gspread writes the latter for parents)
    if second == ("word", "in"):
        if first[0] == "str" and third[0] == "word":
            return _membership(third[1], first[1], user), rest
        if first[0] == "word" and third[0] == "str":
            return _membership(first[1], third[1], user), rest
        raise ValueError("in")
    if first[0] != "word":
        raise ValueError(first[1])
    field, op, value = first[1], second[1], third[1]
    return _compare(field, op, value), rest


def _membership(field: str, value: str, user: str) -> Any:
    if field == "parents":
        return lambda f: value in f.parents
    if field == "owners":
        return lambda f: f.owner == value
    if field in ("writers", "readers"):
        return lambda f: f.owner == value or (f.allowed or {}).get(value) is not None
    raise ValueError(field)


def _compare(field: str, op: str, value: str) -> Any:
    def getter(f: DriveFile) -> Any:
        if field == "name" or field == "title":
            return f.title
        if field == "mimeType":
            return f.mime_type
        if field == "fullText":
            return f.title
        if field == "trashed" or field == "starred":
            return "false"
        if field == "modifiedTime":
            return _iso(f.modified)
        if field == "createdTime":
            return _iso(f.created)
        raise ValueError(field)

    getter(DriveFile("probe", "", "", ""))  # unknown fields fail at parse time
    ops = {
        "=": lambda a: a == value,
        "!=": lambda a: a != value,
        "<": lambda a: a < value,
        ">": lambda a: a > value,
        "<=": lambda a: a <= value,
        ">=": lambda a: a >= value,
        "contains": lambda a: value.lower() in str(a).lower(),
    }
    if op not in ops:
        raise ValueError(op)
    check = ops[op]
    return lambda f: check(getter(f))


# --- OAuth ---------------------------------------------------------------------------------


def _jwt_claims(token: str) -> dict[str, Any] | None:
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        padded = parts[1] + "=" * (-len(parts[1]) % 4)
        claims = orjson.loads(base64.urlsafe_b64decode(padded))
    except (ValueError, orjson.JSONDecodeError):
        return None
    return claims if isinstance(claims, dict) else None


def user_from_token(token: str) -> str:
    """Who a bearer token stands for: ``emulator:<user>``, or the e-mail/subject of a JWT
    (a self-signed service-account token), or the token itself.
    """
    if token.startswith("emulator:"):
        return token[len("emulator:") :] or "emulator-user"
    claims = _jwt_claims(token)
    if claims:
        return str(claims.get("email") or claims.get("sub") or claims.get("iss") or token)
    return token


def token(call: Call) -> tuple[int, dict[str, Any]]:
    """An OAuth 2 token endpoint: any JWT-bearer assertion or refresh token gets a token
    naming its subject (signatures are not checked).
    """
    form = {k: v[-1] for k, v in parse_qs(call.raw_body.decode("utf-8", "replace")).items()}
    grant = form.get("grant_type")
    if grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
        claims = _jwt_claims(form.get("assertion", "")) or {}
        user = str(claims.get("sub") or claims.get("iss") or "emulator-user")
    elif grant == "refresh_token":
        user = form.get("client_id") or "emulator-user"
    else:
        return 400, {
            "error": "unsupported_grant_type",
            "error_description": f"Invalid grant {grant}",
        }
    return 200, {"access_token": f"emulator:{user}", "expires_in": 3599, "token_type": "Bearer"}
