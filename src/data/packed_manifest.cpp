// OUT/manifest.txt: the shards of each split, their record ranges, the classes and the totals.
// Text, so rank 0 can read it once and broadcast it (as the image-folder listing is), and a person
// can read it too.
#include <algorithm>
#include <fstream>
#include <functional>
#include <iterator>
#include <sstream>

#include "distnet/data/packed.hpp"
#include "distnet/error.hpp"

namespace distnet::data {
namespace {

void write_split(std::ostringstream& o, const char* tag, const PackedSplit& s) {
  o << "split " << tag << '\n' << "classes " << s.classes.size() << '\n';
  for (const auto& c : s.classes) o << c << '\n';
  o << "totals files " << s.files << " records " << s.records << " bytes " << s.bytes << " shards "
    << s.shards.size() << '\n';
  for (const auto& sh : s.shards)
    o << "shard " << sh.file << " records " << sh.records << " bytes " << sh.bytes << " first_file "
      << sh.first_file << " files " << sh.files << " checksum " << sh.checksum << '\n';
  o << "skipped " << s.skipped.size() << '\n';
  for (const auto& k : s.skipped) o << k << '\n';
}

// Reads "key value" pairs in order from one line, e.g. "records 5 bytes 10".
struct Fields {
  std::istringstream in;
  const std::function<Error(const std::string&)>& fail;
  std::int64_t number(const char* key) {
    std::string k;
    std::int64_t v = -1;
    if (!(in >> k >> v) || k != key || v < 0 || v > (std::int64_t(1) << 50))
      throw fail("'" + std::string(key) + "'");
    return v;
  }
  std::string word(const char* key) {
    std::string k, v;
    if (!(in >> k >> v) || k != key) throw fail("'" + std::string(key) + "'");
    return v;
  }
};

}  // namespace

std::string PackedManifest::serialize() const {
  std::ostringstream o;
  o << "distnet-packed 1\nsource " << source << '\n';
  write_split(o, "train", train);
  write_split(o, "val", val);
  return o.str();
}

PackedManifest PackedManifest::parse(const std::string& text, const std::string& file) {
  const std::function<Error(const std::string&)> fail = [&](const std::string& what) {
    return Error(file + ": not a packed-shard manifest (at " + what + ")");
  };
  std::istringstream in(text);
  std::string line;
  if (!std::getline(in, line) || line != "distnet-packed 1") throw fail("the first line");
  PackedManifest m;
  if (!std::getline(in, line) || line.rfind("source ", 0) != 0) throw fail("'source'");
  m.source = line.substr(7);
  for (const char* tag : {"train", "val"}) {
    PackedSplit& s = std::string(tag) == "train" ? m.train : m.val;
    if (!std::getline(in, line) || line != std::string("split ") + tag) throw fail(tag);
    std::size_t n = 0;
    if (!std::getline(in, line) || line.rfind("classes ", 0) != 0) throw fail("'classes'");
    std::istringstream(line.substr(8)) >> n;
    if (n == 0) throw fail("'classes'");
    for (std::size_t i = 0; i < n; ++i) {  // no resize(n) up front: n is not trusted
      if (!std::getline(in, line)) throw fail("the class names");
      s.classes.push_back(line);
    }
    if (!std::getline(in, line) || line.rfind("totals ", 0) != 0) throw fail("'totals'");
    Fields t{std::istringstream(line.substr(7)), fail};
    s.files = t.number("files"), s.records = t.number("records"), s.bytes = t.number("bytes");
    const std::int64_t shards = t.number("shards");
    std::int64_t records = 0, bytes = 0, next_file = 0;
    for (std::int64_t i = 0; i < shards; ++i) {
      if (!std::getline(in, line) || line.rfind("shard ", 0) != 0) throw fail("a 'shard' line");
      PackedShardEntry& sh = s.shards.emplace_back();
      Fields f{std::istringstream(line.substr(6)), fail};
      f.in >> sh.file;
      sh.records = f.number("records"), sh.bytes = f.number("bytes");
      sh.first_file = f.number("first_file"), sh.files = f.number("files");
      sh.checksum = f.word("checksum");
      if (sh.file.empty() || sh.file.find('/') != std::string::npos) throw fail("a shard's name");
      if (sh.first_file != next_file || sh.records > sh.files)
        throw Error(file + ": shard " + sh.file + " covers source files from " +
                    std::to_string(sh.first_file) + ", expected " + std::to_string(next_file));
      next_file += sh.files, records += sh.records, bytes += sh.bytes;
    }
    std::size_t k = 0;
    if (!std::getline(in, line) || line.rfind("skipped ", 0) != 0) throw fail("'skipped'");
    std::istringstream(line.substr(8)) >> k;
    for (std::size_t i = 0; i < k; ++i) {
      if (!std::getline(in, line)) throw fail("the skipped files");
      s.skipped.push_back(line);
    }
    if (records != s.records || bytes != s.bytes || next_file != s.files ||
        s.files != s.records + std::int64_t(k))
      throw Error(file + ": the " + tag + " totals (" + std::to_string(s.records) + " records, " +
                  std::to_string(s.bytes) + " bytes) disagree with its shards (" +
                  std::to_string(records) + " records, " + std::to_string(bytes) + " bytes)");
  }
  if (m.train.classes != m.val.classes) {
    const auto& a = m.train.classes;
    const auto& b = m.val.classes;
    std::string odd;
    for (const auto& c : a)
      if (std::find(b.begin(), b.end(), c) == b.end()) odd = "'" + c + "' is only in train";
    for (const auto& c : b)
      if (odd.empty() && std::find(a.begin(), a.end(), c) == a.end())
        odd = "'" + c + "' is only in val";
    if (odd.empty()) odd = "the same names in a different order";
    throw Error(file + ": train and val name different classes (" + std::to_string(a.size()) +
                " and " + std::to_string(b.size()) + "): " + odd +
                "; both splits need the same classes");
  }
  return m;
}

std::string PackedManifest::read_text(const std::string& dir) {
  const std::string path = dir + "/" + kManifestName;
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw Error(path +
                ": missing (not a packed-shard directory, or alexnet-pack has not finished;"
                " rerun it to complete the packing)");
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace distnet::data
