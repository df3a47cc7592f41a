// Image folders: scanning DIR/{train,val}/<class>/, the list as text, classes.txt, file reads.
#include "distnet/data/image_folder.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "distnet/error.hpp"

namespace fs = std::filesystem;

namespace distnet::data {
namespace {

bool image_extension(const std::string& name) {
  const auto dot = name.rfind('.');
  if (dot == std::string::npos) return false;
  std::string ext = name.substr(dot + 1);
  for (char& ch : ext) ch = char(std::tolower(static_cast<unsigned char>(ch)));
  return ext == "jpg" || ext == "jpeg" || ext == "png";
}

void check_name(const std::string& name, const std::string& where) {
  if (name.find('\n') != std::string::npos || name.find('\r') != std::string::npos)
    throw Error(where + ": a name contains a line break; rename it");
}

std::vector<std::string> class_folders(const std::string& split_dir) {
  std::error_code ec;
  if (!fs::is_directory(split_dir, ec))
    throw Error(split_dir +
                ": missing (an image folder has train/ and val/ with a folder per class)");
  std::vector<std::string> classes;
  for (fs::directory_iterator it(split_dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code e2;
    if (it->is_directory(e2)) classes.push_back(it->path().filename().string());
  }
  if (ec) throw Error(split_dir + ": cannot list: " + ec.message());
  if (classes.empty()) throw Error(split_dir + ": no class folders in it");
  std::sort(classes.begin(), classes.end());
  for (const auto& c : classes) check_name(c, split_dir);
  return classes;
}

ImageFolderSplit scan_split(const std::string& split_dir, const std::vector<std::string>& classes) {
  ImageFolderSplit s;
  for (std::size_t label = 0; label < classes.size(); ++label) {
    const std::string dir = split_dir + "/" + classes[label];
    std::vector<std::string> names;
    std::error_code ec;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      const std::string name = it->path().filename().string();
      if (image_extension(name)) names.push_back(name);
    }
    if (ec) throw Error(dir + ": cannot list: " + ec.message());
    if (names.empty())
      throw Error(dir + ": empty class folder (no .jpg, .jpeg or .png file in it)");
    std::sort(names.begin(), names.end());
    for (const auto& n : names) {
      check_name(n, dir);
      s.files.push_back(classes[label] + "/" + n);
      s.labels.push_back(std::int32_t(label));
    }
  }
  return s;
}

void write_split(std::ostringstream& o, const char* tag, const ImageFolderSplit& s) {
  o << tag << ' ' << s.files.size() << '\n';
  for (std::size_t i = 0; i < s.files.size(); ++i) o << s.labels[i] << ' ' << s.files[i] << '\n';
}

}  // namespace

ImageFolderList scan_image_folder(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw Error(dir +
                ": image folder does not exist (pass --data-dir DIR with DIR/train and DIR/val)");
  ImageFolderList list;
  list.root = dir;
  const std::string train_dir = dir + "/train", val_dir = dir + "/val";
  // Evaluating needs only val/: without train/, val's class folders are the classes (in the
  // same sorted order training gave them, when val has every class, as ImageNet's has).
  if (!fs::exists(train_dir, ec)) {
    list.classes = class_folders(val_dir);
    list.val = scan_split(val_dir, list.classes);
    return list;
  }
  list.classes = class_folders(train_dir);
  const std::vector<std::string> val_classes = class_folders(val_dir);
  if (val_classes != list.classes) {
    std::vector<std::string> only_train, only_val;
    std::set_difference(list.classes.begin(), list.classes.end(), val_classes.begin(),
                        val_classes.end(), std::back_inserter(only_train));
    std::set_difference(val_classes.begin(), val_classes.end(), list.classes.begin(),
                        list.classes.end(), std::back_inserter(only_val));
    const bool in_train = !only_train.empty();
    throw Error(train_dir + " and " + val_dir + " have different classes (" +
                std::to_string(list.classes.size()) + " and " + std::to_string(val_classes.size()) +
                "): '" + (in_train ? only_train.front() : only_val.front()) + "' is only in " +
                (in_train ? "train" : "val") + " (" +
                std::to_string(only_train.size() + only_val.size()) +
                " differ); both need the same class folders");
  }
  list.train = scan_split(train_dir, list.classes);
  list.val = scan_split(val_dir, list.classes);
  return list;
}

std::string ImageFolderList::serialize() const {
  std::ostringstream o;
  o << "distnet-image-folder 1\n" << root << '\n' << classes.size() << '\n';
  for (const auto& c : classes) o << c << '\n';
  write_split(o, "train", train);
  write_split(o, "val", val);
  return o.str();
}

ImageFolderList ImageFolderList::parse(const std::string& text, const std::string& source) {
  std::istringstream in(text);
  auto fail = [&](const std::string& what) -> Error {
    return Error(source + ": not an image-folder list (" + what + ")");
  };
  std::string line;
  if (!std::getline(in, line) || line != "distnet-image-folder 1") throw fail("header");
  ImageFolderList l;
  std::size_t n = 0;
  if (!std::getline(in, l.root) || !(in >> n) || !std::getline(in, line)) throw fail("root");
  l.classes.resize(n);
  for (auto& c : l.classes)
    if (!std::getline(in, c)) throw fail("classes");
  for (ImageFolderSplit* s : {&l.train, &l.val}) {
    std::string tag;
    if (!(in >> tag >> n) || !std::getline(in, line)) throw fail("split");
    s->files.resize(n);
    s->labels.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
      if (!(in >> s->labels[i]) || in.get() != ' ' || !std::getline(in, s->files[i]))
        throw fail("file " + std::to_string(i));
      if (s->labels[i] < 0 || std::size_t(s->labels[i]) >= l.classes.size())
        throw fail("label out of range");
    }
  }
  return l;
}

void write_class_names(const std::string& path, const std::vector<std::string>& classes) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    for (const auto& c : classes) out << c << '\n';
    out.flush();
    if (!out) throw Error(tmp + ": cannot write the class names");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    throw Error(path + ": cannot write the class names: " + std::strerror(errno));
}

std::vector<std::uint8_t> read_image_file(const std::string& path) {
  // O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below.
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    struct stat st {};
    if (err == ENOENT && ::lstat(path.c_str(), &st) == 0 && S_ISLNK(st.st_mode))
      throw Error(path + ": cannot open: a symbolic link to a file that does not exist");
    throw Error(path + ": cannot open: " + std::strerror(err));
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw Error(path + ": cannot stat: " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) {
    const char* kind = S_ISDIR(st.st_mode)    ? "a directory"
                       : S_ISFIFO(st.st_mode) ? "a FIFO"
                                              : "not a regular file";
    throw Error(path + ": is " + std::string(kind) + ", not an image file");
  }
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(st.st_size));
  std::size_t got = 0;
  while (got < bytes.size()) {
    const ssize_t r = ::read(fd, bytes.data() + got, bytes.size() - got);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) throw Error(path + ": read failed: " + std::strerror(errno));
    if (r == 0) break;
    got += std::size_t(r);
  }
  bytes.resize(got);
  return bytes;
}

}  // namespace distnet::data
