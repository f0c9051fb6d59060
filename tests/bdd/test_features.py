"""Every scenario of features/*.feature, on the backend chosen with --backend."""

from pytest_bdd import scenarios

scenarios(".")
