"""LeNet prototxts: package data of :mod:`hotcold.caffe.zoo`."""
