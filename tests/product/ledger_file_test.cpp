// The SQLite ledger holds key hashes and every customer's usage: it is created readable by its
// owner only, whatever the umask (issue 21: it was 0644).
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "product/accounts.h"

TEST(LedgerFile, CreatedReadableByItsOwnerOnly) {
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / ("v4f-ledger-mode-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const mode_t old = ::umask(022);
  {
    auto accounts = v4::product::Accounts::open((dir / "ledger.db").string());
    accounts->create_key({"k", std::nullopt, 0, 0});
  }
  ::umask(old);
  for (const char* name : {"ledger.db", "ledger.db-wal"}) {
    struct stat st {};
    if (::stat((dir / name).c_str(), &st) != 0) continue;  // the WAL may be checkpointed away
    EXPECT_EQ(st.st_mode & 0777, 0600u) << name;
  }
  std::error_code ec;
  fs::remove_all(dir, ec);
}
