// v4flash: one executable, many subcommands (serve, inspect, synth, logits, generate, tokenize, ...).
#include <cstdio>
#include <exception>
#include <stdexcept>

#include "cli/command.h"
#include "kernels/isa.h"

static void usage() {
  std::fprintf(stderr, "usage: v4flash <command> [options]\n\ncommands:\n");
  for (const auto& [name, cmd] : v4::cli::registry())
    std::fprintf(stderr, "  %-14s %s\n", name.c_str(), cmd.summary.c_str());
  std::fprintf(stderr,
               "\nevery command takes --isa scalar|avx2|avx512|avx512bf16 (or V4FLASH_ISA=...) to pick the kernel\n"
               "variant; the default is the best this CPU runs.\n");
}

int main(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "help") {
    usage();
    return argc < 2 ? 2 : 0;
  }
  auto& commands = v4::cli::registry();
  auto it = commands.find(argv[1]);
  if (it == commands.end()) {
    std::fprintf(stderr, "v4flash: unknown command '%s'\n\n", argv[1]);
    usage();
    return 2;
  }
  v4::cli::Args args;
  try {
    // --isa NAME (any command): the kernel variant, as V4FLASH_ISA; checked against the CPU.
    for (int i = 2; i < argc; ++i) {
      const std::string a = argv[i];
      if (a == "--isa" || a.rfind("--isa=", 0) == 0) {
        if (a == "--isa" && i + 1 >= argc) throw std::invalid_argument("--isa needs a value");
        v4::kernels::set_isa(v4::kernels::parse_isa(a == "--isa" ? argv[++i] : a.substr(6)));
        continue;
      }
      args.push_back(a);
    }
    v4::kernels::active_isa();  // a bad V4FLASH_ISA fails here, with its message, not mid-run
    return it->second.run(args);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "v4flash %s: %s\n", argv[1], e.what());
    return 1;
  }
}
