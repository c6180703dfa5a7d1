"""Tests of the Kubernetes API emulator, and the emulator itself (``tests.k8s.emulator``)."""
