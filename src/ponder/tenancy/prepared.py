"""Statements on a request's path, compiled once and run on SQLite's cursor directly.

Running a small Core statement costs SQLAlchemy several times what SQLite takes to run it
(the compiled-cache lookup, processing every parameter, events, building the result), and
a request's reserve, settle or ledger row runs a handful of them. A :class:`Prepared`
statement is compiled once per dialect, with the order of its positional parameters and
their bind processors (a ``DateTime`` becomes SQLAlchemy's SQLite text form, exactly as a
Core execution would store it), and on SQLite runs with ``cursor.execute`` or
``executemany`` inside the transaction the :class:`~sqlalchemy.engine.Connection` began. A
driver error is raised as SQLAlchemy's own exception class (``OperationalError``,
``IntegrityError``, ...), as a Core execution would raise it.

Elsewhere (PostgreSQL, whose cost is the round trip) the statement runs through
``Connection.execute`` unchanged. Either way the rows come back as plain tuples of what the
driver returned, unconverted: prepared queries select integers and strings only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import exc
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement

Params = Mapping[str, Any]


class Outcome(NamedTuple):
    rows: list[tuple[Any, ...]]
    rowcount: int


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    names: tuple[str, ...]  # the parameter behind each "?", in order
    defaults: dict[str, Any]  # the values bound in the statement itself
    processors: dict[str, Callable[[Any], Any]]

    def args(self, params: Params) -> tuple[Any, ...]:
        values = {**self.defaults, **params}
        for name, process in self.processors.items():
            values[name] = process(values[name])  # once per name, however often it is used
        return tuple(values[name] for name in self.names)


class Prepared:
    """One statement with bound parameters (``bindparam``), ready to run many times."""

    def __init__(self, statement: Executable) -> None:
        assert isinstance(statement, ClauseElement)
        self.statement = statement
        self._compiled: dict[str, _Compiled] = {}

    def run(self, conn: Connection, params: Params | None = None) -> Outcome:
        """Execute once: the rows it returned (if any) and its row count."""
        compiled = self._for(conn.dialect)
        if compiled is None:
            result = conn.execute(self.statement, dict(params or {}))
            rows = [tuple(r) for r in result.all()] if result.returns_rows else []
            return Outcome(rows, result.rowcount)
        args = compiled.args(params or {})
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(compiled.sql, args)
            rows = list(cursor.fetchall()) if cursor.description is not None else []
            return Outcome(rows, cursor.rowcount)
        except conn.dialect.loaded_dbapi.Error as error:
            raise _wrapped(conn.dialect, compiled.sql, args, error) from error
        finally:
            cursor.close()

    def run_many(self, conn: Connection, params: Sequence[Params]) -> None:
        """Execute once per parameter set, in order (``executemany``)."""
        if not params:
            return
        compiled = self._for(conn.dialect)
        if compiled is None:
            conn.execute(self.statement, [dict(p) for p in params])
            return
        rows = [compiled.args(p) for p in params]
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.executemany(compiled.sql, rows)
        except conn.dialect.loaded_dbapi.Error as error:
            raise _wrapped(conn.dialect, compiled.sql, rows, error) from error
        finally:
            cursor.close()

    def _for(self, dialect: Dialect) -> _Compiled | None:
        if dialect.name != "sqlite":
            return None
        found = self._compiled.get(dialect.name)
        if found is None:
            found = self._compiled[dialect.name] = _compile(self.statement, dialect)
        return found


def _compile(statement: ClauseElement, dialect: Dialect) -> _Compiled:
    compiled = statement.compile(dialect=dialect)
    assert isinstance(compiled, SQLCompiler) and compiled.positional
    assert compiled.positiontup is not None and not compiled.post_compile_params
    processors: dict[str, Callable[[Any], Any]] = {}
    for name, bind in compiled.binds.items():
        process = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            processors[name] = process
    defaults = {name: bind.value for name, bind in compiled.binds.items() if not bind.required}
    return _Compiled(compiled.string, tuple(compiled.positiontup), defaults, processors)


def _wrapped(dialect: Dialect, sql: str, args: Any, error: Exception) -> BaseException:
    """A driver error as SQLAlchemy's exception (what a Core execution raises)."""
    return exc.DBAPIError.instance(sql, args, error, dialect.loaded_dbapi.Error, dialect=dialect)


def driver_execute(conn: Connection, sql: str) -> None:
    """Run a statement with no parameters on the driver (SQLite's ``BEGIN IMMEDIATE``)."""
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(sql)
    except conn.dialect.loaded_dbapi.Error as error:
        raise _wrapped(conn.dialect, sql, (), error) from error
    finally:
        cursor.close()
