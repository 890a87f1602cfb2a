# hotcold with the patched Caffe built for CUDA (sm_70..sm_90, no cuDNN: the
# pinned Caffe predates cuDNN 8's API). The steps are those of the README:
# scripts/setup.sh, which calls caffe_patch/build.sh, the path CI exercises.
#   docker build -t hotcold .
#   docker run --gpus all -e HOTCOLD_MNIST_DIR=/data/mnist -v /path/to/mnist:/data/mnist \
#       -v $PWD/runs:/opt/hotcold/runs hotcold run experiments/mnist_table1.yaml
FROM nvidia/cuda:12.4.1-devel-ubuntu22.04
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv python3-dev git ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/hotcold
COPY . .
RUN bash scripts/setup.sh --cuda --cuda-arch "70 75 80 86 89 90"
ENV PATH=/opt/hotcold/.venv/bin:$PATH
ENTRYPOINT ["hotcold"]
CMD ["doctor"]
