"""Tests of what users install: the Helm chart, the kustomize installs, the image, the alerts."""
