// A thin, checked layer over the HDF5 C API: owned handles, and every call's failure turned into a
// std::runtime_error that names the file, the object and HDF5's own innermost message (HDF5's automatic
// error printing is switched off). Checkpoint and metrics code read and write through it.
//
// Every dataset written with write_dataset carries an `xxh3` attribute (XXH3-64 of its bytes); read_dataset
// verifies it, so a flipped bit in the data is reported with the dataset's name. HDF5 itself checksums the
// metadata (files are created with the latest format), so corruption anywhere is caught.
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace lethe::io {

// hid_t with its close function; closes on destruction.
class H5Handle {
 public:
  H5Handle() = default;
  H5Handle(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
  H5Handle(H5Handle&& o) noexcept : id_(o.id_), close_(o.close_) { o.id_ = -1; }
  H5Handle& operator=(H5Handle&& o) noexcept;
  H5Handle(const H5Handle&) = delete;
  H5Handle& operator=(const H5Handle&) = delete;
  ~H5Handle() { reset(); }
  void reset();
  hid_t release() {
    const hid_t id = id_;
    id_ = -1;
    return id;
  }
  hid_t get() const { return id_; }
  operator hid_t() const { return id_; }

 private:
  hid_t id_ = -1;
  herr_t (*close_)(hid_t) = nullptr;
};

// An open HDF5 file. `path` is kept for messages.
class H5File {
 public:
  static H5File create(const std::filesystem::path& path);  // truncates; latest file format
  static H5File open(const std::filesystem::path& path, bool writable = false);
  const std::filesystem::path& path() const { return path_; }
  hid_t id() const { return file_.get(); }
  void close();  // flushes; errors are reported (the destructor cannot)

  bool exists(const std::string& name) const;  // a link at `name` (e.g. "model/wte")
  H5Handle group(const std::string& name, bool create = false) const;

  // Datasets. Element type: float, double, int64, uint8.
  template <class T>
  void write(const std::string& name, const T* data, const std::vector<hsize_t>& dims) const;
  template <class T>
  std::vector<T> read(const std::string& name, std::vector<hsize_t>* dims = nullptr) const;
  // Reads exactly n elements into dst (the dataset must hold n), verifying the checksum.
  template <class T>
  void read_into(const std::string& name, T* dst, size_t n) const;
  std::vector<hsize_t> dims(const std::string& name) const;
  void write_string(const std::string& name, const std::string& text) const;
  std::string read_string(const std::string& name) const;
  std::vector<std::string> children(const std::string& group) const;
  void remove(const std::string& name) const;  // unlinks a dataset or group

  // Attributes on the root (name) or on an object (object, name).
  void set_attr(const std::string& name, int64_t v) const;
  void set_attr(const std::string& name, double v) const;
  void set_attr(const std::string& name, const std::string& v) const;
  bool has_attr(const std::string& name) const;  // of the file's root
  int64_t attr_int(const std::string& name) const;
  double attr_double(const std::string& name) const;
  std::string attr_string(const std::string& name) const;

  // Appendable 1-D float64 / int64 series for metrics: created chunked with unlimited length.
  void create_series(const std::string& name, bool integer) const;
  hsize_t series_length(const std::string& name) const;
  void append_series(const std::string& name, const std::vector<double>& values) const;
  void truncate_series(const std::string& name, hsize_t length) const;
  std::vector<int64_t> read_series_int(const std::string& name) const;
  std::vector<double> read_series(const std::string& name) const;  // any numeric 1-D dataset, as double

 private:
  H5File(std::filesystem::path path, H5Handle file) : path_(std::move(path)), file_(std::move(file)) {}
  [[noreturn]] void fail(const std::string& what, const std::string& object) const;
  std::filesystem::path path_;
  H5Handle file_;
};

// XXH3-64 of a byte range (the checksum stored with every dataset and file).
uint64_t checksum(const void* data, size_t bytes);

// Switches off HDF5's automatic error printing for the calling thread; H5File does it itself.
void quiet_hdf5();

}  // namespace lethe::io
