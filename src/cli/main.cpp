// v4flash: one executable, many subcommands (serve, inspect, synth, logits, generate, tokenize, ...).
#include <cstdio>
#include <exception>
#include <stdexcept>

#include "cli/command.h"

static void usage() {
  std::fprintf(stderr, "usage: v4flash <command> [options]\n\ncommands:\n");
  for (const auto& [name, cmd] : v4::cli::registry())
    std::fprintf(stderr, "  %-14s %s\n", name.c_str(), cmd.summary.c_str());
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
  v4::cli::Args args(argv + 2, argv + argc);
  try {
    return it->second.run(args);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "v4flash %s: %s\n", argv[1], e.what());
    return 1;
  }
}
