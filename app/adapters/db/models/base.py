"""Declarative base with a naming convention so that migrations name constraints alike."""
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


# Balance-holding units (coupons, prepaid cards) by ledger bucket; their model modules register
# here so that the ledger can post to them and verify them.
UNIT_MODELS: dict[str, type] = {}
