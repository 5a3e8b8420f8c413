#include "common/file_system.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"

namespace dino {
namespace {

absl::Status ErrnoStatus(absl::string_view op, const std::string& path, int err) {
  const std::string msg = absl::StrCat(op, " ", path, ": ", std::strerror(err));
  switch (err) {
    case ENOENT:
      return absl::NotFoundError(msg);
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(msg);
    case ENOSPC:
    case EDQUOT:
      return absl::ResourceExhaustedError(msg);
    case EEXIST:
      return absl::AlreadyExistsError(msg);
    default:
      return absl::InternalError(msg);
  }
}

class PosixWritableFile final : public WritableFile {
 public:
  PosixWritableFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  ~PosixWritableFile() override {
    if (fd_ >= 0) ::close(fd_);
  }
  absl::Status Append(absl::string_view data) override {
    while (!data.empty()) {
      const ssize_t n = ::write(fd_, data.data(), data.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        return ErrnoStatus("write", path_, errno);
      }
      data.remove_prefix(static_cast<size_t>(n));
    }
    return absl::OkStatus();
  }
  absl::Status Sync() override {
    if (::fsync(fd_) != 0) return ErrnoStatus("fsync", path_, errno);
    return absl::OkStatus();
  }
  absl::Status Close() override {
    if (fd_ < 0) return absl::OkStatus();
    const int rc = ::close(fd_);
    fd_ = -1;
    if (rc != 0) return ErrnoStatus("close", path_, errno);
    return absl::OkStatus();
  }

 private:
  std::string path_;
  int fd_;
};

class PosixReadableFile final : public ReadableFile {
 public:
  PosixReadableFile(std::string path, int fd, uint64_t size)
      : path_(std::move(path)), fd_(fd), size_(size) {}
  ~PosixReadableFile() override { ::close(fd_); }
  absl::StatusOr<std::string> Read(uint64_t offset, size_t n) override {
    std::string out;
    if (offset >= size_) return out;
    out.resize(static_cast<size_t>(std::min<uint64_t>(n, size_ - offset)));
    size_t done = 0;
    while (done < out.size()) {
      const ssize_t got =
          ::pread(fd_, out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
      if (got < 0) {
        if (errno == EINTR) continue;
        return ErrnoStatus("pread", path_, errno);
      }
      if (got == 0) break;  // The file shrank since it was opened.
      done += static_cast<size_t>(got);
    }
    out.resize(done);
    return out;
  }
  uint64_t size() const override { return size_; }

 private:
  std::string path_;
  int fd_;
  uint64_t size_;
};

class PosixFileSystem final : public FileSystem {
 public:
  absl::StatusOr<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) override {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return ErrnoStatus("open", path, errno);
    return std::unique_ptr<WritableFile>(new PosixWritableFile(path, fd));
  }
  absl::StatusOr<std::string> ReadFile(const std::string& path) override {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ErrnoStatus("open", path, errno);
    std::string out;
    char buf[1 << 16];
    for (;;) {
      const ssize_t n = ::read(fd, buf, sizeof(buf));
      if (n < 0) {
        if (errno == EINTR) continue;
        const int err = errno;
        ::close(fd);
        return ErrnoStatus("read", path, err);
      }
      if (n == 0) break;
      out.append(buf, static_cast<size_t>(n));
    }
    ::close(fd);
    return out;
  }
  absl::StatusOr<std::unique_ptr<ReadableFile>> NewReadableFile(const std::string& path) override {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ErrnoStatus("open", path, errno);
    struct stat st;
    if (::fstat(fd, &st) != 0) {
      const int err = errno;
      ::close(fd);
      return ErrnoStatus("fstat", path, err);
    }
    return std::unique_ptr<ReadableFile>(
        new PosixReadableFile(path, fd, static_cast<uint64_t>(st.st_size)));
  }
  absl::Status RenameFile(const std::string& from, const std::string& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0) return ErrnoStatus("rename", from, errno);
    return absl::OkStatus();
  }
  absl::Status DeleteFile(const std::string& path) override {
    if (::unlink(path.c_str()) != 0) return ErrnoStatus("unlink", path, errno);
    return absl::OkStatus();
  }
  absl::Status CreateDirs(const std::string& path) override {
    std::string prefix;
    for (absl::string_view part : absl::StrSplit(path, '/')) {
      prefix.append(part.data(), part.size());
      if (!prefix.empty() && ::mkdir(prefix.c_str(), 0755) != 0 && errno != EEXIST) {
        return ErrnoStatus("mkdir", prefix, errno);
      }
      prefix += '/';
    }
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) return ErrnoStatus("stat", path, errno);
    if (!S_ISDIR(st.st_mode)) return absl::FailedPreconditionError(path + " is not a directory");
    return absl::OkStatus();
  }
  absl::Status SyncDir(const std::string& dir) override {
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return ErrnoStatus("open", dir, errno);
    const int rc = ::fsync(fd);
    const int err = errno;
    ::close(fd);
    if (rc != 0) return ErrnoStatus("fsync", dir, err);
    return absl::OkStatus();
  }
  absl::StatusOr<std::vector<std::string>> ListDir(const std::string& dir) override {
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) return ErrnoStatus("opendir", dir, errno);
    std::vector<std::string> names;
    while (struct dirent* e = ::readdir(d)) {
      const std::string name = e->d_name;
      if (name != "." && name != "..") names.push_back(name);
    }
    ::closedir(d);
    return names;
  }
  absl::StatusOr<uint64_t> FileSize(const std::string& path) override {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) return ErrnoStatus("stat", path, errno);
    return static_cast<uint64_t>(st.st_size);
  }
  bool Exists(const std::string& path) override { return ::access(path.c_str(), F_OK) == 0; }
};

class FaultyWritableFile final : public WritableFile {
 public:
  FaultyWritableFile(FaultInjectingFileSystem* fs, std::string path,
                     std::unique_ptr<WritableFile> base)
      : fs_(fs), path_(std::move(path)), base_(std::move(base)) {}
  absl::Status Append(absl::string_view data) override {
    DINO_RETURN_IF_ERROR(fs_->Check("Append", path_));
    return base_->Append(data);
  }
  absl::Status Sync() override {
    DINO_RETURN_IF_ERROR(fs_->Check("Sync", path_));
    return base_->Sync();
  }
  absl::Status Close() override {
    DINO_RETURN_IF_ERROR(fs_->Check("Close", path_));
    return base_->Close();
  }

 private:
  FaultInjectingFileSystem* fs_;
  std::string path_;
  std::unique_ptr<WritableFile> base_;
};

class FaultyReadableFile final : public ReadableFile {
 public:
  FaultyReadableFile(FaultInjectingFileSystem* fs, std::string path,
                     std::unique_ptr<ReadableFile> base)
      : fs_(fs), path_(std::move(path)), base_(std::move(base)) {}
  absl::StatusOr<std::string> Read(uint64_t offset, size_t n) override {
    DINO_RETURN_IF_ERROR(fs_->Check("Read", path_));
    return base_->Read(offset, n);
  }
  uint64_t size() const override { return base_->size(); }

 private:
  FaultInjectingFileSystem* fs_;
  std::string path_;
  std::unique_ptr<ReadableFile> base_;
};

}  // namespace

FileSystem* DefaultFileSystem() {
  static FileSystem* fs = new PosixFileSystem();
  return fs;
}

std::string DirName(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

absl::Status WriteFileAtomically(FileSystem* fs, const std::string& path, absl::string_view data) {
  static std::atomic<uint64_t> counter{0};
  const std::string tmp =
      absl::StrCat(path, ".tmp.", ::getpid(), ".", counter.fetch_add(1, std::memory_order_relaxed));
  auto write = [&]() -> absl::Status {
    DINO_ASSIGN_OR_RETURN(std::unique_ptr<WritableFile> file, fs->NewWritableFile(tmp));
    DINO_RETURN_IF_ERROR(file->Append(data));
    DINO_RETURN_IF_ERROR(file->Sync());
    DINO_RETURN_IF_ERROR(file->Close());
    return fs->RenameFile(tmp, path);
  };
  absl::Status status = write();
  if (!status.ok()) {
    fs->DeleteFile(tmp).IgnoreError();
    return status;
  }
  return fs->SyncDir(DirName(path));
}

void FaultInjectingFileSystem::FailOn(std::string op, std::string path_substring,
                                      absl::Status error, int skip, int count) {
  absl::MutexLock lock(&mu_);
  rules_.push_back({std::move(op), std::move(path_substring), std::move(error), skip, count});
}

void FaultInjectingFileSystem::ClearFaults() {
  absl::MutexLock lock(&mu_);
  rules_.clear();
}

int FaultInjectingFileSystem::injected_failures() const {
  absl::MutexLock lock(&mu_);
  return injected_;
}

absl::Status FaultInjectingFileSystem::Check(absl::string_view op, absl::string_view path) {
  absl::MutexLock lock(&mu_);
  for (Rule& rule : rules_) {
    if (rule.op != op || path.find(rule.path_substring) == absl::string_view::npos) continue;
    if (rule.skip > 0) {
      --rule.skip;
      continue;
    }
    if (rule.count == 0) continue;
    if (rule.count > 0) --rule.count;
    ++injected_;
    return rule.error;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<WritableFile>> FaultInjectingFileSystem::NewWritableFile(
    const std::string& path) {
  DINO_RETURN_IF_ERROR(Check("NewWritableFile", path));
  DINO_ASSIGN_OR_RETURN(std::unique_ptr<WritableFile> base, base_->NewWritableFile(path));
  return std::unique_ptr<WritableFile>(new FaultyWritableFile(this, path, std::move(base)));
}
absl::StatusOr<std::string> FaultInjectingFileSystem::ReadFile(const std::string& path) {
  DINO_RETURN_IF_ERROR(Check("ReadFile", path));
  return base_->ReadFile(path);
}
absl::StatusOr<std::unique_ptr<ReadableFile>> FaultInjectingFileSystem::NewReadableFile(
    const std::string& path) {
  DINO_RETURN_IF_ERROR(Check("NewReadableFile", path));
  DINO_ASSIGN_OR_RETURN(std::unique_ptr<ReadableFile> base, base_->NewReadableFile(path));
  return std::unique_ptr<ReadableFile>(new FaultyReadableFile(this, path, std::move(base)));
}
absl::Status FaultInjectingFileSystem::RenameFile(const std::string& from, const std::string& to) {
  DINO_RETURN_IF_ERROR(Check("RenameFile", to));
  return base_->RenameFile(from, to);
}
absl::Status FaultInjectingFileSystem::DeleteFile(const std::string& path) {
  DINO_RETURN_IF_ERROR(Check("DeleteFile", path));
  return base_->DeleteFile(path);
}
absl::Status FaultInjectingFileSystem::CreateDirs(const std::string& path) {
  DINO_RETURN_IF_ERROR(Check("CreateDirs", path));
  return base_->CreateDirs(path);
}
absl::Status FaultInjectingFileSystem::SyncDir(const std::string& dir) {
  DINO_RETURN_IF_ERROR(Check("SyncDir", dir));
  return base_->SyncDir(dir);
}
absl::StatusOr<std::vector<std::string>> FaultInjectingFileSystem::ListDir(const std::string& dir) {
  return base_->ListDir(dir);
}
absl::StatusOr<uint64_t> FaultInjectingFileSystem::FileSize(const std::string& path) {
  return base_->FileSize(path);
}
bool FaultInjectingFileSystem::Exists(const std::string& path) { return base_->Exists(path); }

}  // namespace dino
