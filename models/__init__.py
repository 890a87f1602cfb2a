"""Model descriptions (``*.yaml``): package data of :mod:`hotcold.caffe.zoo`."""
