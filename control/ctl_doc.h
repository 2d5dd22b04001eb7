// stentorctl's man page and bash completion, generated from its own CLI11
// command tree (the same names, help texts and defaults `--help` prints), so
// there is no second, hand-kept copy to drift. The build runs
// `stentorctl --man` and `stentorctl --completion bash` (control/meson.build).
#pragma once

#include <string>

namespace CLI {
class App;
}

namespace stentor::ctl {

// Prose the man page needs beside the tree (exit status, environment,
// files, examples); --help prints the same text as its footer.
struct doc_text {
    std::string name_line;      // "stentorctl - control a running stentord ..."
    std::string version;
    std::string description;    // paragraphs separated by blank lines
    std::string exit_status;    // lines "N  meaning"
    std::string environment;    // lines "NAME  meaning"
    std::string examples;       // one command per line
    std::string see_also;       // "stentord(8), curl(1)"
};

// roff (man(7)) for section 1.
std::string man_page(const CLI::App& app, const doc_text& d);

// A bash completion script: subcommands by position, the options of the
// command being typed (global ones everywhere, since they may come after
// the subcommand), file names after options that take a file, and the
// choices of options whose type is a set ("{forward,mix}").
std::string bash_completion(const CLI::App& app);

}  // namespace stentor::ctl
