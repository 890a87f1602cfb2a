"""Experiment configs shipped with hotcold: package data of :mod:`hotcold.pipeline.config` (``hotcold run NAME``)."""
