"""Reflex states: a small base state with the customer's session and cart, one substate
per page. States hold ids, form fields and small, pre-formatted view lists; every rule
lives in ``core.services``."""
