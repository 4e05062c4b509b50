"""The OpenAPI 3 description of the API, written from the declared routes."""

from __future__ import annotations

from typing import Any

from tmserver.routing import ID, Api, Endpoint, Param

_ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["error", "message", "status_code", "type"],
            "properties": {
                "error": {"type": "boolean"},
                "message": {"type": "string"},
                "status_code": {"type": "integer"},
                "type": {"type": "string"},
            },
        }
    },
}
_JSON_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean"}


def _schema(param: Param, in_query: bool) -> dict[str, Any]:
    kind = param.type
    if kind == ID:
        schema: dict[str, Any] = {"type": "string", "pattern": "^[0-9]{1,18}$"}
    elif kind in _JSON_TYPES:
        schema = {"type": _JSON_TYPES[kind]}
        if kind is bool and in_query:
            schema = {"type": "string", "enum": ["true", "false"]}
    elif kind is list:
        schema = {"type": "array"}
        if param.items is not None:
            schema["items"] = _schema(Param(param.items), in_query=False)
    elif kind is dict:
        schema = {"type": "object"}
    else:
        schema = {}
    if param.enum is not None:
        schema["enum"] = list(param.enum)
    if param.minimum is not None:
        schema["minimum"] = param.minimum
    if param.schema:
        schema.update(param.schema)
    if param.description:
        schema["description"] = param.description
    return schema


def _operation(api: Api, endpoint: Endpoint, path_names: list[str]) -> dict[str, Any]:
    parameters = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"},
            "description": "decimal id (the legacy base64 encoding is accepted too)",
        }
        for name in path_names
    ]
    for name, param in endpoint.query.items():
        parameters.append(
            {
                "name": name,
                "in": "query",
                "required": param.required,
                "schema": _schema(param, in_query=True),
            }
        )
    operation: dict[str, Any] = {
        "summary": endpoint.summary,
        "operationId": f"{endpoint.method.lower()}_{endpoint.path}",
        "parameters": parameters,
        "responses": {
            str(endpoint.status): {
                "description": "success",
                "content": {endpoint.produces: {"schema": {}}},
            },
            "default": {
                "description": "error",
                "content": {"application/json": {"schema": _ERROR_SCHEMA}},
            },
        },
    }
    if endpoint.tag:
        operation["tags"] = [endpoint.tag]
    if endpoint.body:
        operation["requestBody"] = {
            "required": any(p.required for p in endpoint.body.values()),
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            n: _schema(p, in_query=False) for n, p in endpoint.body.items()
                        },
                        "required": [n for n, p in endpoint.body.items() if p.required],
                    }
                }
            },
        }
    if endpoint.files:
        operation["requestBody"] = {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            n: {"type": "string", "format": "binary"} for n in endpoint.files
                        },
                        "required": [n for n, p in endpoint.files.items() if p.required],
                    }
                }
            },
        }
    if not endpoint.authenticated:
        operation["security"] = []
    return operation


def _auth_operation(operation_id: str, summary: str) -> dict[str, Any]:
    """A ``POST`` under ``/auth`` that takes no body and needs a (normal) token."""
    return {
        "post": {
            "summary": summary,
            "operationId": operation_id,
            "responses": {
                "200": {"description": "done", "content": {"application/json": {}}},
                "default": {
                    "description": "error",
                    "content": {"application/json": {"schema": _ERROR_SCHEMA}},
                },
            },
        }
    }


def openapi_spec(apis: list[Api], title: str = "TissueMAPS", version: str = "0.1.0") -> dict:
    """The OpenAPI 3.0 document for the routes declared on `apis`."""
    from tmserver.routing import PATH_PARAM  # the one definition of a path parameter

    paths: dict[str, dict[str, Any]] = {}
    for api in apis:
        for endpoint in api.endpoints:
            full = api.url_prefix + endpoint.path
            names = PATH_PARAM.findall(endpoint.path)
            paths.setdefault(full, {})[endpoint.method.lower()] = _operation(api, endpoint, names)
    paths["/auth"] = {
        "post": {
            "summary": "Log in: exchange a user name and password for a token",
            "operationId": "post_auth",
            "security": [],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["username", "password"],
                            "properties": {
                                "username": {"type": "string"},
                                "password": {"type": "string"},
                            },
                        }
                    }
                },
            },
            "responses": {
                "200": {"description": "the token", "content": {"application/json": {}}},
                "default": {
                    "description": "error",
                    "content": {"application/json": {"schema": _ERROR_SCHEMA}},
                },
            },
        }
    }
    paths["/auth/logout_all"] = _auth_operation(
        "post_auth_logout_all",
        "Log out everywhere: every token of the caller issued so far stops working",
    )
    paths["/auth/tile_token"] = _auth_operation(
        "post_auth_tile_token",
        "A short-lived token {access_token, expires_in} for ?access_token= of map tiles only",
    )
    return {
        "openapi": "3.0.3",
        "info": {"title": title, "version": version},
        "components": {
            "securitySchemes": {
                "jwt": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "'JWT <token>' with the token from POST /auth",
                }
            }
        },
        "security": [{"jwt": []}],
        "paths": paths,
    }
