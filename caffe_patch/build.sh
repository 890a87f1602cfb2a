#!/usr/bin/env bash
# Build BVLC Caffe (pinned commit 99bd997) with hotcold's patches for the
# Python of the project's virtual environment, into a cache prefix keyed by
# source version + patch hash + build options. The only way hotcold builds
# Caffe: scripts/setup.sh, CI and the Dockerfile all call this script.
#
# usage: caffe_patch/build.sh [--source DIR|TARBALL] [--cuda] [--cpu]
#                             [--cuda-toolkit DIR|pip] [--cuda-arch "75 80 86 89 90"]
#                             [--force] [--venv DIR] [--no-link] [--jobs N] [--no-apt]
# The CUDA toolkit comes from --cuda-toolkit DIR, else $CUDA_HOME, else the nvcc
# on PATH; --cuda-toolkit pip installs the pinned CUDA 13 wheels into the cache.
# --no-link builds (or finds) the build without pointing the venv at it.
# stdout: the pycaffe directory of the build (its python/ folder).
set -euo pipefail

readonly CAFFE_COMMIT=99bd99795dcdf0b1d3086a8d67ab1782a8a08383
readonly CAFFE_VERSION=1.0.0+git20180821.99bd997
readonly CAFFE_GIT_URL=https://github.com/BVLC/caffe.git
readonly DEBIAN_SRC_VERSION=1.0.0+git20180821.99bd997-8
readonly DEBIAN_SRC_SUITE=bullseye
readonly DEBIAN_ORIG_TARBALL=caffe_1.0.0+git20180821.99bd997.orig.tar.gz
readonly DEBIAN_ORIG_SHA256=e0eb3f06794f7402c77b7dec8e8480273ee1a1bb192e9122b621a69d4147ad0c
# CUDA 13.0.0 (the release of the Dockerfile's base image) as wheels: nvcc needs
# crt (its device headers) and nvvm (cicc) besides the five libraries' packages.
readonly CUDA_PIP_VERSION=13.0.48
readonly CUDA_PIP_PACKAGES=(nvidia-cuda-nvcc==13.0.48 nvidia-cuda-crt==13.0.48 nvidia-nvvm==13.0.48
  nvidia-cuda-runtime==13.0.48 nvidia-cublas==13.0.0.19 nvidia-curand==10.4.0.35 nvidia-cuda-cccl==13.0.50)

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")

source_arg=""
mode=auto
cuda_arch="75 80 86 89 90"
cuda_toolkit=""
force=0
link=1
venv="$repo/.venv"
jobs=$(nproc 2>/dev/null || echo 2)
use_apt=1

die() { echo "caffe_patch/build.sh: error: $*" >&2; exit 1; }
say() { echo "[caffe build] $*" >&2; }

while [ $# -gt 0 ]; do
  case "$1" in
    --source) source_arg=${2:?--source needs a directory or tarball}; shift 2 ;;
    --cuda) mode=cuda; shift ;;
    --cpu) mode=cpu; shift ;;
    --cuda-arch) cuda_arch=${2:?--cuda-arch needs a list such as "75 80 90"}; shift 2 ;;
    --cuda-toolkit) cuda_toolkit=${2:?--cuda-toolkit needs a directory or 'pip'}; shift 2 ;;
    --no-link) link=0; shift ;;
    --force) force=1; shift ;;
    --venv) venv=${2:?--venv needs a directory}; shift 2 ;;
    --jobs) jobs=${2:?--jobs needs a number}; shift 2 ;;
    --no-apt) use_apt=0; shift ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
done

[ -d "$venv" ] || die "no Python virtual environment at $venv; create it first: python3 -m venv $venv && $venv/bin/pip install numpy"
venv=$(cd "$venv" && pwd)  # absolute: cmake runs in the build folder
python="$venv/bin/python"
[ -x "$python" ] || die "no Python virtual environment at $venv; create it first: python3 -m venv $venv && $venv/bin/pip install numpy"
"$python" -c "import numpy" 2>/dev/null \
  || die "numpy is missing from $venv; install it first: $python -m pip install numpy"

if [ "$mode" = auto ]; then
  if command -v nvcc >/dev/null 2>&1 && command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    mode=cuda
  else
    mode=cpu
  fi
fi

cache_root=${HOTCOLD_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/hotcold}
mkdir -p "$cache_root" || die "cannot create the cache folder $cache_root (set HOTCOLD_CACHE_DIR)"
cache_root=$(cd "$cache_root" && pwd)  # absolute: it becomes the install prefix and the .pth line
# One build at a time per cache: two runs with the same key would delete each other's work.
# (A read-only shared cache is used as it is: with nothing to build, nothing is written.)
if exec 9>"$cache_root/.lock" 2>/dev/null; then
  flock -n 9 || { say "waiting for another build in $cache_root to finish ($cache_root/.lock)"; flock 9; }
fi

# ---- the CUDA toolkit (CUDA builds only) -----------------------------------
pip_toolkit() {
  # The pinned CUDA wheels in a tools venv, and beside it a toolkit root laid out
  # as CMake's FindCUDA and nvcc.profile expect (bin/, nvvm/bin/cicc, include/,
  # lib64/ with unversioned .so links); the wheels install everything into one
  # nvidia/cu13 folder. Prints the root.
  # Named by every pin, so a changed cuBLAS / cuRAND / CCCL pin gets its own toolkit.
  local base
  base="$cache_root/cuda-pip-$CUDA_PIP_VERSION-$(printf '%s\n' "${CUDA_PIP_PACKAGES[@]}" | sha256sum | cut -c1-8)"
  local root="$base/root"
  if [ ! -f "$base/.complete" ]; then
    rm -rf "$base"
    say "installing CUDA $CUDA_PIP_VERSION from the Python package index into $base/venv"
    "$python" -m venv "$base/venv" >&2 || die "could not create the tools venv $base/venv"
    "$base/venv/bin/python" -m pip install -q --disable-pip-version-check "${CUDA_PIP_PACKAGES[@]}" >&2 \
      || die "pip could not install ${CUDA_PIP_PACKAGES[*]} (no access to the package index?); install a CUDA 13 toolkit and pass --cuda-toolkit DIR"
    local wheels
    wheels="$("$base/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/nvidia/cu13"
    [ -x "$wheels/bin/nvcc" ] && [ -x "$wheels/bin/cicc" ] || die "the CUDA wheels in $base/venv lack bin/nvcc or bin/cicc"
    mkdir -p "$root/bin" "$root/nvvm/bin" "$root/lib64"
    local f name
    for f in "$wheels"/bin/*; do
      name=$(basename "$f")
      if [ "$name" = cicc ]; then ln -s "$f" "$root/nvvm/bin/cicc"; else ln -s "$f" "$root/bin/$name"; fi
    done
    ln -s "$wheels/nvvm/libdevice" "$root/nvvm/libdevice"
    ln -s "$wheels/include" "$root/include"
    for f in "$wheels"/lib/*; do
      name=$(basename "$f")
      ln -s "$f" "$root/lib64/$name"
      case "$name" in *.so.*) ln -sf "$name" "$root/lib64/${name%%.so.*}.so" ;; esac
    done
    touch "$base/.complete"
  fi
  echo "$root"
}

find_toolkit() {
  # The toolkit root: --cuda-toolkit DIR|pip, else $CUDA_HOME, else the nvcc on PATH.
  if [ "$cuda_toolkit" = pip ]; then
    pip_toolkit
  elif [ -n "$cuda_toolkit" ]; then
    echo "$cuda_toolkit"
  elif [ -n "${CUDA_HOME:-}" ]; then
    echo "$CUDA_HOME"
  elif command -v nvcc >/dev/null 2>&1; then
    (cd "$(dirname "$(command -v nvcc)")/.." && pwd)
  else
    die "--cuda: no CUDA toolkit found; pass --cuda-toolkit DIR (a toolkit with bin/nvcc), set CUDA_HOME, put nvcc on PATH, or use --cuda-toolkit pip to install CUDA $CUDA_PIP_VERSION from the Python package index"
  fi
}

cuda_root="" cuda_version="" cuda_libdir=""
if [ "$mode" = cuda ]; then
  cuda_root=$(find_toolkit)
  [ -d "$cuda_root" ] || die "CUDA toolkit $cuda_root does not exist"
  cuda_root=$(cd "$cuda_root" && pwd)
  [ -x "$cuda_root/bin/nvcc" ] || die "CUDA toolkit $cuda_root has no bin/nvcc; pass the toolkit's root (the folder above bin/), or --cuda-toolkit pip"
  cuda_version=$("$cuda_root/bin/nvcc" --version | sed -n 's/.*, V\([0-9][0-9.]*\)$/\1/p') \
    || die "$cuda_root/bin/nvcc --version failed; is the toolkit complete?"
  [ -n "$cuda_version" ] || die "$cuda_root/bin/nvcc --version does not name a release; is it a working nvcc?"
  for d in lib64 lib targets/x86_64-linux/lib; do
    [ -e "$cuda_root/$d/libcudart.so" ] && { cuda_libdir="$cuda_root/$d"; break; }
  done
  [ -n "$cuda_libdir" ] || die "CUDA toolkit $cuda_root has no libcudart.so in lib64/ or lib/ (an nvcc on PATH that is a wrapper script hides the real root: pass --cuda-toolkit DIR or set CUDA_HOME)"
  for lib in libcublas.so libcurand.so; do
    [ -e "$cuda_libdir/$lib" ] || die "CUDA toolkit $cuda_root lacks $lib in $cuda_libdir (install cuBLAS and cuRAND, or use --cuda-toolkit pip)"
  done
  # Each architecture must be one this nvcc still targets (CUDA 13 dropped sm_70 and older).
  known=$("$cuda_root/bin/nvcc" --list-gpu-code | tr '\n' ' ') \
    || die "$cuda_root/bin/nvcc --list-gpu-code failed; is the toolkit complete?"
  [ -n "$cuda_arch" ] || die "--cuda-arch is empty; name at least one architecture, e.g. --cuda-arch 75"
  for a in $cuda_arch; do
    [[ "$a" =~ ^[0-9]+$ ]] || die "--cuda-arch: '$a' is not a compute capability such as 75 or 90"
    [[ " $known" == *" sm_$a "* ]] || die "--cuda-arch: nvcc $cuda_version cannot build sm_$a; it builds: $known"
  done
  cuda_arch=$(printf '%s\n' $cuda_arch | sort -n -u | tr '\n' ' ' | sed 's/ $//')
  say "CUDA $cuda_version at $cuda_root (libraries: $cuda_libdir), architectures: $cuda_arch"
fi

# ---- the cache key --------------------------------------------------------
py_tag=$("$python" -c 'import sys; print("cp%d%d" % sys.version_info[:2])')
np_major=$("$python" -c 'import numpy; print(numpy.__version__.split(".")[0])')
# patches/*.patch apply to every build; patches/cuda/*.patch only to CUDA builds,
# so the CPU build's key (and cache) does not depend on them.
patch_hash=$(cat "$here"/patches/*.patch | sha256sum | cut -c1-16)
cuda_patch_hash=$(cat "$here"/patches/cuda/*.patch | sha256sum | cut -c1-16)
options="mode=$mode"
[ "$mode" = cuda ] && options="$options arch=$cuda_arch cuda=$cuda_version cuda_lib=$cuda_libdir cuda_patches=$cuda_patch_hash"
key_text="caffe=$CAFFE_VERSION patches=$patch_hash $options python=$py_tag numpy=$np_major"
key=$(printf '%s' "$key_text" | sha256sum | cut -c1-16)
prefix="$cache_root/caffe/$key"

site=$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')

link_into_venv() {
  # A .pth file makes `import caffe` work in the venv without PYTHONPATH.
  if [ "$link" = 1 ]; then
    printf '%s\n' "$prefix/python" > "$site/hotcold_caffe.pth"
    say "pycaffe: $prefix/python (linked into $venv by $site/hotcold_caffe.pth)"
  else
    say "pycaffe: $prefix/python (not linked into $venv: --no-link)"
  fi
  echo "$prefix/python"
}

if [ "$force" = 0 ] && [ -f "$prefix/.complete" ]; then
  say "cached build found ($key_text)"
  link_into_venv
  exit 0
fi

# ---- system packages ------------------------------------------------------
apt_packages=(build-essential cmake patch ca-certificates git
  libboost-system-dev libboost-thread-dev libboost-filesystem-dev libboost-python-dev
  libgflags-dev libgoogle-glog-dev libhdf5-dev liblmdb-dev libopenblas-dev
  libprotobuf-dev protobuf-compiler)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi; }
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$use_apt" = 1 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing build dependencies with apt: ${missing[*]}"
    as_root apt-get update -qq || die "apt-get update failed (not root and no sudo?); install as root: apt-get install ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
      || die "apt-get install failed; install these packages yourself: ${missing[*]}"
  else
    die "missing build dependencies and no apt-get to install them: ${missing[*]}"
  fi
fi
command -v g++ >/dev/null || die "no C++ compiler (g++); install build-essential"

# ---- the pinned source ----------------------------------------------------
work="$cache_root/caffe/$key.build"
rm -rf "$work"
mkdir -p "$work/src"
src="$work/src"

fetch_local() {
  if [ -d "$source_arg" ]; then
    [ -f "$source_arg/CMakeLists.txt" ] && [ -f "$source_arg/src/caffe/net.cpp" ] \
      || die "--source $source_arg does not look like a Caffe source tree (no CMakeLists.txt / src/caffe/net.cpp)"
    if git -C "$source_arg" rev-parse HEAD >/dev/null 2>&1; then
      local head
      head=$(git -C "$source_arg" rev-parse HEAD)
      [ "$head" = "$CAFFE_COMMIT" ] || die "--source $source_arg is at commit $head, not the pinned $CAFFE_COMMIT"
      git -C "$source_arg" archive "$CAFFE_COMMIT" | tar -x -C "$src"
      echo "local git checkout $source_arg at $CAFFE_COMMIT"
    else
      cp -a "$source_arg"/. "$src"/
      echo "local directory $source_arg (not a git checkout: verified by the patches applying)"
    fi
  elif [ -f "$source_arg" ]; then
    local sum
    sum=$(sha256sum "$source_arg" | cut -d' ' -f1)
    [ "$sum" = "$DEBIAN_ORIG_SHA256" ] || die "--source $source_arg has sha256 $sum, not the pinned $DEBIAN_ORIG_SHA256"
    tar -xzf "$source_arg" -C "$src"
    echo "local tarball $source_arg (sha256 verified)"
  else
    die "--source $source_arg is neither a directory nor a file"
  fi
}

fetch_git() {
  command -v git >/dev/null || return 1
  timeout 30 git ls-remote "$CAFFE_GIT_URL" >/dev/null 2>&1 || return 1
  say "cloning $CAFFE_GIT_URL"
  git clone -q "$CAFFE_GIT_URL" "$work/git" || return 1
  git -C "$work/git" -c advice.detachedHead=false checkout -q "$CAFFE_COMMIT" || return 1
  [ "$(git -C "$work/git" rev-parse HEAD)" = "$CAFFE_COMMIT" ] || return 1
  git -C "$work/git" archive "$CAFFE_COMMIT" | tar -x -C "$src"
  rm -rf "$work/git"
  echo "git clone of $CAFFE_GIT_URL at $CAFFE_COMMIT"
}

debian_mirror() {
  # The machine's own Debian archive URI (never a hard-coded host): the first
  # URI of an enabled 'deb' entry that is not the security archive.
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; break } }' "$f"
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk 'BEGIN { RS = ""; FS = "\n" }
      { types = ""; uris = ""; enabled = "yes"
        for (i = 1; i <= NF; i++) {
          if ($i ~ /^Types:/) types = $i
          if ($i ~ /^URIs:/) { uris = $i; sub(/^URIs:[ \t]*/, "", uris) }
          if ($i ~ /^Enabled:[ \t]*no/) enabled = "no"
        }
        if (types ~ /(^|[ \t])deb([ \t]|$)/ && enabled == "yes") { split(uris, u, /[ \t]+/); print u[1] } }' "$f"
  done | grep -v -- '-security' | grep -v 'security\.' | head -1
}

fetch_apt_source() {
  command -v apt-get >/dev/null || return 1
  command -v dpkg-source >/dev/null || return 1
  local mirror keyring
  mirror=$(debian_mirror)
  [ -n "$mirror" ] || return 1
  keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  [ -f "$keyring" ] || return 1
  local apt_dir="$work/apt"
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/archives/partial" "$apt_dir/dl"
  printf 'deb-src [signed-by=%s] %s %s main\n' "$keyring" "$mirror" "$DEBIAN_SRC_SUITE" > "$apt_dir/sources.list"
  local opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
              -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache::Archives=$apt_dir/archives"
              -o "APT::Sandbox::User=root")
  say "fetching Debian source package caffe $DEBIAN_SRC_VERSION ($DEBIAN_SRC_SUITE) from $mirror"
  apt-get -qq "${opts[@]}" update >/dev/null 2>&1 || return 1
  (cd "$apt_dir/dl" && apt-get -qq "${opts[@]}" source --download-only "caffe=$DEBIAN_SRC_VERSION" >/dev/null 2>&1) || return 1
  local tarball="$apt_dir/dl/$DEBIAN_ORIG_TARBALL" sum
  [ -f "$tarball" ] || return 1
  sum=$(sha256sum "$tarball" | cut -d' ' -f1)
  [ "$sum" = "$DEBIAN_ORIG_SHA256" ] || die "Debian source tarball has sha256 $sum, expected $DEBIAN_ORIG_SHA256"
  # The upstream tarball only: Debian's own packaging patches are not applied.
  tar -xzf "$tarball" -C "$src"
  rm -rf "$apt_dir"
  echo "Debian source package caffe $DEBIAN_SRC_VERSION ($DEBIAN_SRC_SUITE, $mirror), upstream tarball sha256 verified"
}

if [ -n "$source_arg" ]; then
  origin=$(fetch_local)
elif origin=$(fetch_git); then
  :
elif origin=$(fetch_apt_source); then
  :
else
  die "could not obtain the Caffe source: no --source given, $CAFFE_GIT_URL unreachable, and 'apt-get source caffe=$DEBIAN_SRC_VERSION' failed (no Debian mirror in /etc/apt, or no network). Download $DEBIAN_ORIG_TARBALL or clone BVLC/caffe at $CAFFE_COMMIT elsewhere and pass --source"
fi
say "source: $origin"

patches=("$here"/patches/*.patch)
[ "$mode" = cuda ] && patches+=("$here"/patches/cuda/*.patch)
for p in "${patches[@]}"; do
  patch -d "$src" -p1 -s --forward < "$p" || die "patch ${p#"$here"/patches/} does not apply to the source ($origin)"
done

# ---- configure, build, install --------------------------------------------
py_include=$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
py_libdir=$("$python" -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR"))')
py_ldlib=$("$python" -c 'import sysconfig; print(sysconfig.get_config_var("LDLIBRARY"))')
cmake_args=(-DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$prefix"
  -DBLAS=Open -Dpython_version=3
  -DUSE_LEVELDB=OFF -DUSE_OPENCV=OFF -DBUILD_docs=OFF
  -DPYTHON_EXECUTABLE="$python" -DPYTHON_INCLUDE_DIR="$py_include"
  -DPYTHON_LIBRARY="$py_libdir/$py_ldlib" -Wno-dev)
if [ "$mode" = cuda ]; then
  # The pinned source predates cuDNN 8's API, so cuDNN stays off. CCCL (Thrust,
  # CUB) of CUDA 13 needs C++17 in .cu files: asked for explicitly rather than
  # left to the host compiler's default. The toolkit's library folder joins the
  # install RPATH, so pycaffe finds libcudart without LD_LIBRARY_PATH. PTX for
  # the newest architecture keeps newer GPUs working through the driver's JIT.
  cmake_args+=(-DCPU_ONLY=OFF -DUSE_CUDNN=OFF -DCUDA_TOOLKIT_ROOT_DIR="$cuda_root"
    -DCUDA_NVCC_FLAGS="-std=c++17" -DCUDA_ARCH_NAME=Manual
    -DCUDA_ARCH_BIN="$cuda_arch" -DCUDA_ARCH_PTX="${cuda_arch##* }"
    -DCMAKE_INSTALL_RPATH="$prefix/lib;$cuda_libdir")
else
  cmake_args+=(-DCPU_ONLY=ON -DCMAKE_INSTALL_RPATH="$prefix/lib")
fi

say "configuring ($options, $py_tag) in $work/build"
mkdir -p "$work/build"
start=$(date +%s)
(cd "$work/build" && cmake "$src" "${cmake_args[@]}" > "$work/cmake.log" 2>&1) \
  || die "cmake failed; see $work/cmake.log"
say "building with $jobs jobs (on 2 cores about 4 minutes for the CPU build, 17 for CUDA with one architecture, 30 with five; log: $work/make.log)"
(cd "$work/build" && make -j"$jobs" caffe pycaffe > "$work/make.log" 2>&1) \
  || { tail -20 "$work/make.log" >&2; die "make failed; see $work/make.log"; }
rm -rf "$prefix"
# make install builds the tools and examples too (its target depends on 'all').
(cd "$work/build" && make -j"$jobs" install > "$work/install.log" 2>&1) || die "make install failed; see $work/install.log"
[ -f "$prefix/python/caffe/_caffe.so" ] \
  || die "the build has no pycaffe: cmake switched the Python interface off (see 'Python' in $work/cmake.log)"
elapsed=$(( $(date +%s) - start ))
# Every symbol of pycaffe must resolve against the libraries it will load (for a
# CUDA build: the toolkit's cudart, cuBLAS, cuRAND), before the build is cached.
links=$(ldd -r "$prefix/python/caffe/_caffe.so" 2>&1) || die "ldd -r $prefix/python/caffe/_caffe.so failed: $links"
if grep -E "undefined symbol|not found" <<<"$links" >&2; then
  rm -rf "$prefix"
  die "pycaffe does not link: the lines above name the missing symbols or libraries (build log: $work/make.log)"
fi

cat > "$prefix/BUILDINFO" <<EOF
source: $origin
caffe_version: $CAFFE_VERSION
caffe_commit: $CAFFE_COMMIT
patch_hash: $patch_hash
patches: $(for p in "${patches[@]}"; do printf '%s ' "${p#"$here"/patches/}"; done)
mode: $mode
blas: OpenBLAS
cuda_arch: $([ "$mode" = cuda ] && echo "$cuda_arch" || echo none)
cuda_version: $([ "$mode" = cuda ] && echo "$cuda_version" || echo none)
cuda_toolkit: $([ "$mode" = cuda ] && echo "$cuda_root" || echo none)
cuda_patch_hash: $([ "$mode" = cuda ] && echo "$cuda_patch_hash" || echo none)
python: $py_tag
numpy_major: $np_major
build_seconds: $elapsed
built_at: $(date -u +%Y-%m-%dT%H:%M:%SZ)
EOF
touch "$prefix/.complete"
rm -rf "$work"
say "built in ${elapsed}s into $prefix"
link_into_venv
