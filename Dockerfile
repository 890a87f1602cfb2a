# hotcold with the patched Caffe built for CUDA 13 (sm_75..sm_90 plus PTX for
# sm_90, no cuDNN: the pinned Caffe predates cuDNN 8's API). The one build step
# is the README's setup, scripts/setup.sh --cuda, which calls caffe_patch/build.sh;
# it installs Python and Caffe's build dependencies with apt (the base image has no
# Python) and finds the image's own nvcc on PATH (/usr/local/cuda/bin). CI runs the
# same command (setup.sh --cuda, with the same CUDA 13.0.0 from the Python package
# index and one architecture); the image itself was never built: see README.md, "Docker".
#   docker build -t hotcold .
#   docker run --gpus all -e HOTCOLD_MNIST_DIR=/data/mnist -v /path/to/mnist:/data/mnist \
#       -v "$PWD/runs:/opt/hotcold/runs" hotcold run mnist_table1 --gpu 0
FROM nvidia/cuda:13.0.0-devel-ubuntu24.04
ENV DEBIAN_FRONTEND=noninteractive
WORKDIR /opt/hotcold
COPY . .
RUN bash scripts/setup.sh --cuda
ENV PATH=/opt/hotcold/.venv/bin:$PATH
ENTRYPOINT ["hotcold"]
CMD ["doctor"]
