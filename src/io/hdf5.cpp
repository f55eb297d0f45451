#include "io/hdf5.h"

#include <xxhash.h>

#include <mutex>
#include <stdexcept>

#include <fmt/format.h>

namespace lethe::io {
namespace fs = std::filesystem;
namespace {

// HDF5's innermost message (where the error was detected) from the current error stack.
std::string hdf5_message() {
  std::string msg;
  H5Ewalk2(
      H5E_DEFAULT, H5E_WALK_UPWARD,
      [](unsigned n, const H5E_error2_t* e, void* out) -> herr_t {
        if (n == 0 && e->desc) *static_cast<std::string*>(out) = e->desc;
        return 0;
      },
      &msg);
  H5Eclear2(H5E_DEFAULT);
  return msg.empty() ? "unknown HDF5 error" : msg;
}

template <class T>
hid_t mem_type();
template <>
hid_t mem_type<float>() {
  return H5T_NATIVE_FLOAT;
}
template <>
hid_t mem_type<double>() {
  return H5T_NATIVE_DOUBLE;
}
template <>
hid_t mem_type<int64_t>() {
  return H5T_NATIVE_INT64;
}
template <>
hid_t mem_type<uint8_t>() {
  return H5T_NATIVE_UINT8;
}

constexpr const char* kChecksumAttr = "xxh3";
}  // namespace

H5Handle& H5Handle::operator=(H5Handle&& o) noexcept {
  if (this != &o) {
    reset();
    id_ = o.id_;
    close_ = o.close_;
    o.id_ = -1;
  }
  return *this;
}

void H5Handle::reset() {
  if (id_ >= 0 && close_) close_(id_);
  id_ = -1;
}

uint64_t checksum(const void* data, size_t bytes) {
  return XXH3_64bits(data, bytes);
}

void quiet_hdf5() {
  // Per call, not once: in thread-safe HDF5 builds (Debian's) the setting is per thread.
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
}

void H5File::fail(const std::string& what, const std::string& object) const {
  throw std::runtime_error(fmt::format("{}: {}{}: {}", path_.string(), what,
                                       object.empty() ? "" : " '" + object + "'", hdf5_message()));
}

#define LETHE_H5(call, what, object) \
  if ((call) < 0) fail(what, object)

H5File H5File::create(const fs::path& path) {
  quiet_hdf5();
  H5Handle fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
  H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST);  // checksummed metadata
  const hid_t id = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
  if (id < 0)
    throw std::runtime_error(fmt::format("{}: cannot create HDF5 file: {}", path.string(), hdf5_message()));
  return H5File(path, H5Handle(id, H5Fclose));
}

H5File H5File::open(const fs::path& path, bool writable) {
  quiet_hdf5();
  const hid_t id = H5Fopen(path.c_str(), writable ? H5F_ACC_RDWR : H5F_ACC_RDONLY, H5P_DEFAULT);
  if (id < 0)
    throw std::runtime_error(fmt::format("{}: cannot open as HDF5 (missing, truncated or corrupt): {}",
                                         path.string(), hdf5_message()));
  return H5File(path, H5Handle(id, H5Fclose));
}

void H5File::close() {
  if (file_.get() < 0) return;
  LETHE_H5(H5Fflush(file_, H5F_SCOPE_LOCAL), "cannot flush", "");
  // Closed here rather than in ~H5Handle so that a failure is reported.
  if (H5Fclose(file_.release()) < 0)
    throw std::runtime_error(fmt::format("{}: cannot close: {}", path_.string(), hdf5_message()));
}

bool H5File::exists(const std::string& name) const {
  // Check each path component: H5Lexists fails on a missing intermediate group.
  size_t pos = 0;
  while (true) {
    pos = name.find('/', pos + 1);
    const std::string prefix = name.substr(0, pos);
    if (H5Lexists(file_, prefix.c_str(), H5P_DEFAULT) <= 0) return false;
    if (pos == std::string::npos) return true;
  }
}

H5Handle H5File::group(const std::string& name, bool create) const {
  hid_t id = create && !exists(name) ? H5Gcreate2(file_, name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)
                                     : H5Gopen2(file_, name.c_str(), H5P_DEFAULT);
  if (id < 0) fail(create ? "cannot create group" : "missing group", name);
  return H5Handle(id, H5Gclose);
}

template <class T>
void H5File::write(const std::string& name, const T* data, const std::vector<hsize_t>& dims) const {
  H5Handle space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), H5Sclose);
  H5Handle lcpl(H5Pcreate(H5P_LINK_CREATE), H5Pclose);
  H5Pset_create_intermediate_group(lcpl, 1);  // "forget/ids" creates /forget as needed
  H5Handle dset(H5Dcreate2(file_, name.c_str(), mem_type<T>(), space, lcpl, H5P_DEFAULT, H5P_DEFAULT),
                H5Dclose);
  if (dset.get() < 0) fail("cannot create dataset", name);
  hsize_t n = 1;
  for (hsize_t d : dims) n *= d;
  if (n > 0)
    LETHE_H5(H5Dwrite(dset, mem_type<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, data), "cannot write", name);
  const int64_t sum = static_cast<int64_t>(checksum(data, n * sizeof(T)));
  H5Handle aspace(H5Screate(H5S_SCALAR), H5Sclose);
  H5Handle attr(H5Acreate2(dset, kChecksumAttr, H5T_NATIVE_INT64, aspace, H5P_DEFAULT, H5P_DEFAULT),
                H5Aclose);
  if (attr.get() < 0 || H5Awrite(attr, H5T_NATIVE_INT64, &sum) < 0) fail("cannot write checksum of", name);
}

std::vector<hsize_t> H5File::dims(const std::string& name) const {
  H5Handle dset(H5Dopen2(file_, name.c_str(), H5P_DEFAULT), H5Dclose);
  if (dset.get() < 0) fail("missing dataset", name);
  H5Handle space(H5Dget_space(dset), H5Sclose);
  const int nd = H5Sget_simple_extent_ndims(space);
  if (nd < 0) fail("unreadable shape of", name);
  std::vector<hsize_t> d(nd);
  H5Sget_simple_extent_dims(space, d.data(), nullptr);
  return d;
}

template <class T>
void H5File::read_into(const std::string& name, T* dst, size_t n) const {
  const std::vector<hsize_t> d = dims(name);
  hsize_t total = 1;
  for (hsize_t x : d) total *= x;
  if (total != n) fail(fmt::format("expected {} elements in dataset", n), name);
  H5Handle dset(H5Dopen2(file_, name.c_str(), H5P_DEFAULT), H5Dclose);
  if (n > 0)
    LETHE_H5(H5Dread(dset, mem_type<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, dst), "cannot read dataset", name);
  if (H5Aexists(dset, kChecksumAttr) <= 0) fail("no checksum attribute on dataset", name);
  H5Handle attr(H5Aopen(dset, kChecksumAttr, H5P_DEFAULT), H5Aclose);
  int64_t stored = 0;
  if (attr.get() < 0 || H5Aread(attr, H5T_NATIVE_INT64, &stored) < 0) fail("unreadable checksum of", name);
  const auto actual = static_cast<int64_t>(checksum(dst, n * sizeof(T)));
  if (stored != actual)
    throw std::runtime_error(
        fmt::format("{}: dataset '{}' fails its checksum (stored {:016x}, computed {:016x}): "
                    "the data is corrupt",
                    path_.string(), name, static_cast<uint64_t>(stored), static_cast<uint64_t>(actual)));
}

template <class T>
std::vector<T> H5File::read(const std::string& name, std::vector<hsize_t>* dims_out) const {
  const std::vector<hsize_t> d = dims(name);
  hsize_t n = 1;
  for (hsize_t x : d) n *= x;
  std::vector<T> out(n);
  read_into<T>(name, out.data(), n);
  if (dims_out) *dims_out = d;
  return out;
}

template void H5File::write<float>(const std::string&, const float*, const std::vector<hsize_t>&) const;
template void H5File::write<double>(const std::string&, const double*, const std::vector<hsize_t>&) const;
template void H5File::write<int64_t>(const std::string&, const int64_t*, const std::vector<hsize_t>&) const;
template void H5File::write<uint8_t>(const std::string&, const uint8_t*, const std::vector<hsize_t>&) const;
template std::vector<float> H5File::read<float>(const std::string&, std::vector<hsize_t>*) const;
template std::vector<double> H5File::read<double>(const std::string&, std::vector<hsize_t>*) const;
template std::vector<int64_t> H5File::read<int64_t>(const std::string&, std::vector<hsize_t>*) const;
template std::vector<uint8_t> H5File::read<uint8_t>(const std::string&, std::vector<hsize_t>*) const;
template void H5File::read_into<float>(const std::string&, float*, size_t) const;

// Strings are stored as uint8 datasets (with the same checksum) so they read back byte for byte.
void H5File::write_string(const std::string& name, const std::string& text) const {
  write<uint8_t>(name, reinterpret_cast<const uint8_t*>(text.data()), {text.size()});
}

std::string H5File::read_string(const std::string& name) const {
  const std::vector<uint8_t> bytes = read<uint8_t>(name);
  return std::string(bytes.begin(), bytes.end());
}

void H5File::remove(const std::string& name) const {
  LETHE_H5(H5Ldelete(id(), name.c_str(), H5P_DEFAULT), "cannot delete", name);
}

std::vector<std::string> H5File::children(const std::string& group_name) const {
  H5Handle g = group(group_name);
  std::vector<std::string> names;
  const herr_t rc = H5Literate(
      g, H5_INDEX_NAME, H5_ITER_INC, nullptr,
      [](hid_t, const char* name, const H5L_info_t*, void* out) -> herr_t {
        static_cast<std::vector<std::string>*>(out)->push_back(name);
        return 0;
      },
      &names);
  if (rc < 0) fail("cannot list group", group_name);
  return names;
}

namespace {
void write_attr(hid_t loc, const char* name, hid_t type, const void* v) {
  if (H5Aexists(loc, name) > 0) H5Adelete(loc, name);
  H5Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  H5Handle attr(H5Acreate2(loc, name, type, space, H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  if (attr.get() < 0 || H5Awrite(attr, type, v) < 0)
    throw std::runtime_error(fmt::format("cannot write attribute '{}': {}", name, hdf5_message()));
}
}  // namespace

void H5File::set_attr(const std::string& name, int64_t v) const {
  write_attr(file_, name.c_str(), H5T_NATIVE_INT64, &v);
}
void H5File::set_attr(const std::string& name, double v) const {
  write_attr(file_, name.c_str(), H5T_NATIVE_DOUBLE, &v);
}
void H5File::set_attr(const std::string& name, const std::string& v) const {
  H5Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type, std::max<size_t>(v.size(), 1));
  std::string padded = v.empty() ? std::string(1, '\0') : v;
  write_attr(file_, name.c_str(), type, padded.data());
}

bool H5File::has_attr(const std::string& name) const {
  const htri_t e = H5Aexists(file_, name.c_str());
  if (e < 0) fail("cannot check attribute", name);
  return e > 0;
}

int64_t H5File::attr_int(const std::string& name) const {
  H5Handle attr(H5Aopen(file_, name.c_str(), H5P_DEFAULT), H5Aclose);
  int64_t v = 0;
  if (attr.get() < 0 || H5Aread(attr, H5T_NATIVE_INT64, &v) < 0)
    fail("missing or unreadable attribute", name);
  return v;
}

double H5File::attr_double(const std::string& name) const {
  H5Handle attr(H5Aopen(file_, name.c_str(), H5P_DEFAULT), H5Aclose);
  double v = 0;
  if (attr.get() < 0 || H5Aread(attr, H5T_NATIVE_DOUBLE, &v) < 0)
    fail("missing or unreadable attribute", name);
  return v;
}

std::string H5File::attr_string(const std::string& name) const {
  H5Handle attr(H5Aopen(file_, name.c_str(), H5P_DEFAULT), H5Aclose);
  if (attr.get() < 0) fail("missing attribute", name);
  H5Handle type(H5Aget_type(attr), H5Tclose);
  if (H5Tget_class(type) != H5T_STRING) fail("attribute is not a string", name);
  if (H5Tis_variable_str(type) > 0) {  // as h5py writes str attributes: read the pointer, then free it
    H5Handle mem(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(mem, H5T_VARIABLE);
    H5Tset_cset(mem, H5Tget_cset(type));
    char* p = nullptr;
    if (H5Aread(attr, mem, &p) < 0 || p == nullptr) fail("unreadable attribute", name);
    std::string v(p);
    H5free_memory(p);
    return v;
  }
  const size_t n = H5Tget_size(type);
  std::string v(n, '\0');
  if (H5Aread(attr, type, v.data()) < 0) fail("unreadable attribute", name);
  while (!v.empty() && v.back() == '\0') v.pop_back();
  return v;
}

void H5File::create_series(const std::string& name, bool integer) const {
  const hsize_t zero = 0, unlimited = H5S_UNLIMITED, chunk = 1024;
  H5Handle space(H5Screate_simple(1, &zero, &unlimited), H5Sclose);
  H5Handle dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  H5Pset_chunk(dcpl, 1, &chunk);
  H5Handle lcpl(H5Pcreate(H5P_LINK_CREATE), H5Pclose);
  H5Pset_create_intermediate_group(lcpl, 1);
  H5Handle dset(H5Dcreate2(file_, name.c_str(), integer ? H5T_NATIVE_INT64 : H5T_NATIVE_DOUBLE, space, lcpl,
                           dcpl, H5P_DEFAULT),
                H5Dclose);
  if (dset.get() < 0) fail("cannot create series", name);
}

hsize_t H5File::series_length(const std::string& name) const {
  return dims(name).at(0);
}

void H5File::append_series(const std::string& name, const std::vector<double>& values) const {
  if (values.empty()) return;
  H5Handle dset(H5Dopen2(file_, name.c_str(), H5P_DEFAULT), H5Dclose);
  if (dset.get() < 0) fail("missing series", name);
  const hsize_t old = series_length(name), add = values.size(), total = old + add;
  LETHE_H5(H5Dset_extent(dset, &total), "cannot extend", name);
  H5Handle fspace(H5Dget_space(dset), H5Sclose);
  LETHE_H5(H5Sselect_hyperslab(fspace, H5S_SELECT_SET, &old, nullptr, &add, nullptr), "cannot select in",
           name);
  H5Handle mspace(H5Screate_simple(1, &add, nullptr), H5Sclose);
  // Values are doubles in memory; HDF5 converts to the series' type (int64 for step counters).
  LETHE_H5(H5Dwrite(dset, H5T_NATIVE_DOUBLE, mspace, fspace, H5P_DEFAULT, values.data()), "cannot append to",
           name);
}

std::vector<int64_t> H5File::read_series_int(const std::string& name) const {
  const hsize_t n = series_length(name);
  std::vector<int64_t> out(n);
  H5Handle dset(H5Dopen2(file_, name.c_str(), H5P_DEFAULT), H5Dclose);
  if (n > 0)
    LETHE_H5(H5Dread(dset, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()), "cannot read", name);
  return out;
}

std::vector<double> H5File::read_series(const std::string& name) const {
  const std::vector<hsize_t> d = dims(name);
  if (d.size() != 1) fail("expected a 1-D series at", name);
  std::vector<double> out(d[0]);
  H5Handle dset(H5Dopen2(file_, name.c_str(), H5P_DEFAULT), H5Dclose);
  if (d[0] > 0)
    LETHE_H5(H5Dread(dset, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()), "cannot read",
             name);
  return out;
}

void H5File::truncate_series(const std::string& name, hsize_t length) const {
  H5Handle dset(H5Dopen2(file_, name.c_str(), H5P_DEFAULT), H5Dclose);
  if (dset.get() < 0) fail("missing series", name);
  LETHE_H5(H5Dset_extent(dset, &length), "cannot truncate", name);
}

}  // namespace lethe::io
