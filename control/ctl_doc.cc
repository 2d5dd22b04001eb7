#include "ctl_doc.h"

#include <set>
#include <sstream>
#include <vector>

#include <CLI/CLI.hpp>

namespace stentor::ctl {
namespace {

std::vector<const CLI::App*> children(const CLI::App& a) {
    return a.get_subcommands([](const CLI::App*) { return true; });
}

bool is_help(const CLI::Option* o) { return o->check_name("--help") || o->check_name("--help-all"); }

std::vector<const CLI::Option*> named_options(const CLI::App& a) {
    return a.get_options([](const CLI::Option* o) { return o->nonpositional() && !is_help(o) && !o->get_group().empty(); });
}

std::vector<const CLI::Option*> positionals(const CLI::App& a) {
    return a.get_options([](const CLI::Option* o) { return !o->nonpositional(); });
}

bool takes_value(const CLI::Option* o) { return o->get_type_size_max() > 0; }

// "{forward,mix}" inside a type name: the option's choices.
std::vector<std::string> choices(const CLI::Option* o) {
    std::vector<std::string> out;
    const std::string t = o->get_type_name();
    const auto b = t.find('{'), e = t.find('}');
    if (b == std::string::npos || e == std::string::npos || e < b) return out;
    std::string cur;
    for (size_t i = b + 1; i < e; ++i) {
        if (t[i] == ',') {
            out.push_back(cur);
            cur.clear();
        } else if (t[i] != ' ') {
            cur += t[i];
        }
    }
    if (!cur.empty()) out.push_back(cur);
    return out;
}

// Escapes for roff text: backslashes, and a line that would start with a
// control character ('.' or '\'').
std::string roff(const std::string& s) {
    std::string out;
    for (char c : s) {
        if (c == '\\') out += "\\e";
        else if (c == '-') out += "\\-";
        else out += c;
    }
    if (!out.empty() && (out[0] == '.' || out[0] == '\'')) out = "\\&" + out;
    return out;
}

std::string upper(std::string s) {
    for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return s;
}

// "--offset UINT [0]": the option as the synopsis and the lists show it.
std::string option_line(const CLI::Option* o) {
    std::string names;
    for (const auto& s : o->get_snames()) names += (names.empty() ? "-" : ", -") + s;
    for (const auto& l : o->get_lnames()) names += (names.empty() ? "--" : ", --") + l;
    std::string line = "\\fB" + roff(names) + "\\fR";
    if (takes_value(o)) line += " \\fI" + roff(o->get_type_name()) + "\\fR";
    return line;
}

void option_list(std::ostringstream& m, const std::vector<const CLI::Option*>& opts) {
    for (const auto* o : opts) {
        m << ".TP\n" << option_line(o) << "\n";
        std::string desc = o->get_description();
        if (!o->get_default_str().empty()) desc += " (default: " + o->get_default_str() + ")";
        if (o->get_required()) desc += " (required)";
        m << roff(desc) << "\n";
    }
}

void commands(std::ostringstream& m, const CLI::App& a, const std::string& path) {
    for (const auto* c : children(a)) {
        const std::string p = path.empty() ? c->get_name() : path + " " + c->get_name();
        const auto subs = children(*c);
        if (subs.empty()) {
            std::string synopsis = "\\fB" + roff(p) + "\\fR";
            for (const auto* o : positionals(*c))
                synopsis += o->get_required() ? " \\fI" + roff(upper(o->get_name())) + "\\fR"
                                              : " [\\fI" + roff(upper(o->get_name())) + "\\fR]";
            if (!named_options(*c).empty()) synopsis += " [\\fIOPTIONS\\fR]";
            m << ".SS " << synopsis << "\n" << roff(c->get_description()) << "\n";
            std::vector<const CLI::Option*> pos = positionals(*c);
            for (const auto* o : pos) {
                m << ".TP\n\\fI" << roff(upper(o->get_name())) << "\\fR\n" << roff(o->get_description());
                if (!o->get_type_name().empty()) m << " (" << roff(o->get_type_name()) << ")";
                m << "\n";
            }
            option_list(m, named_options(*c));
        } else {
            commands(m, *c, p);
        }
    }
}

void paragraphs(std::ostringstream& m, const std::string& text) {
    std::istringstream in(text);
    std::string line;
    bool first = true;
    while (std::getline(in, line)) {
        if (line.empty()) {
            m << ".PP\n";
            continue;
        }
        if (first) first = false;
        m << roff(line) << "\n";
    }
}

// "N  text" lines as a tagged list.
void tagged(std::ostringstream& m, const std::string& text) {
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        const auto sp = line.find("  ");
        if (sp == std::string::npos) continue;
        size_t rest = sp;
        while (rest < line.size() && line[rest] == ' ') ++rest;
        m << ".TP\n\\fB" << roff(line.substr(0, sp)) << "\\fR\n" << roff(line.substr(rest)) << "\n";
    }
}

void leaves(const CLI::App& a, const std::string& path, std::vector<std::pair<std::string, const CLI::App*>>& out) {
    out.emplace_back(path, &a);
    for (const auto* c : children(a)) leaves(*c, path.empty() ? c->get_name() : path + " " + c->get_name(), out);
}

std::string words(const std::vector<std::string>& v) {
    std::string s;
    for (const auto& w : v) s += (s.empty() ? "" : " ") + w;
    return s;
}

}  // namespace

std::string man_page(const CLI::App& app, const doc_text& d) {
    std::ostringstream m;
    m << ".\\\" Generated by `stentorctl --man` from stentorctl's own command table: edit control/stentorctl.cc, not this.\n";
    m << ".TH STENTORCTL 1 \"\" \"stentor " << roff(d.version) << "\" \"Stentor\"\n";
    m << ".SH NAME\n" << roff(d.name_line) << "\n";
    m << ".SH SYNOPSIS\n\\fBstentorctl\\fR [\\fIGLOBAL OPTIONS\\fR] \\fICOMMAND\\fR [\\fIARGUMENTS\\fR] [\\fIOPTIONS\\fR]\n";
    m << ".SH DESCRIPTION\n";
    paragraphs(m, d.description);
    m << ".SH GLOBAL OPTIONS\nThey may come before or after the command.\n";
    option_list(m, named_options(app));
    m << ".TP\n\\fB\\-h, \\-\\-help\\fR\nprint the help of stentorctl or of the command it follows, and exit 0\n";
    m << ".SH COMMANDS\n";
    commands(m, app, "");
    m << ".SH EXIT STATUS\n";
    tagged(m, d.exit_status);
    m << ".SH ENVIRONMENT\n";
    tagged(m, d.environment);
    m << ".SH EXAMPLES\n";
    std::istringstream ex(d.examples);
    std::string line;
    while (std::getline(ex, line))
        if (!line.empty()) m << ".PP\n.nf\n" << roff(line) << "\n.fi\n";
    m << ".SH SEE ALSO\n" << roff(d.see_also) << "\n";
    return m.str();
}

std::string bash_completion(const CLI::App& app) {
    std::vector<std::pair<std::string, const CLI::App*>> all;
    leaves(app, "", all);
    std::vector<std::string> global, value_opts, file_opts;
    for (const auto* o : named_options(app)) {
        for (const auto& l : o->get_lnames()) global.push_back("--" + l);
    }
    std::set<std::string> seen_value, seen_file;
    std::ostringstream choice_cases;
    for (const auto& [path, a] : all)
        for (const auto* o : named_options(*a)) {
            if (!takes_value(o)) continue;
            for (const auto& l : o->get_lnames()) {
                const std::string n = "--" + l;
                if (seen_value.insert(n).second) value_opts.push_back(n);
                if (o->get_type_name().find("FILE") != std::string::npos && seen_file.insert(n).second)
                    file_opts.push_back(n);
                const auto ch = choices(o);
                if (!ch.empty()) choice_cases << "        \"" << path << " " << n << "\") echo \"" << words(ch) << "\" ;;\n";
            }
        }
    std::ostringstream s;
    s << "# bash completion for stentorctl. Generated by `stentorctl --completion bash` from its own command\n"
         "# table (control/stentorctl.cc): edit that, not this file.\n";
    s << "_stentorctl_children() {\n    case \"$1\" in\n";
    for (const auto& [path, a] : all) {
        std::vector<std::string> names;
        for (const auto* c : children(*a)) names.push_back(c->get_name());
        if (!names.empty()) s << "        \"" << path << "\") echo \"" << words(names) << "\" ;;\n";
    }
    s << "    esac\n}\n";
    s << "_stentorctl_options() {\n    case \"$1\" in\n";
    for (const auto& [path, a] : all) {
        if (path.empty()) continue;
        std::vector<std::string> names;
        for (const auto* o : named_options(*a))
            for (const auto& l : o->get_lnames()) names.push_back("--" + l);
        if (!names.empty()) s << "        \"" << path << "\") echo \"" << words(names) << "\" ;;\n";
    }
    s << "    esac\n}\n";
    s << "_stentorctl_choices() {\n    case \"$1\" in\n" << choice_cases.str() << "    esac\n}\n";
    s << "_stentorctl() {\n"
         "    local cur=${COMP_WORDS[COMP_CWORD]} prev=\"\" path=\"\" w i kids\n"
         "    local global=\"" << words(global) << "\"\n"
         "    (( COMP_CWORD > 0 )) && prev=${COMP_WORDS[COMP_CWORD-1]}\n"
         "    # Walk the words before the cursor: subcommands deepen the path,\n"
         "    # options that take a value skip it.\n"
         "    for (( i = 1; i < COMP_CWORD; i++ )); do\n"
         "        w=${COMP_WORDS[i]}\n"
         "        case \" " << words(value_opts) << " \" in *\" $w \"*) (( i++ )); continue ;; esac\n"
         "        kids=$(_stentorctl_children \"$path\")\n"
         "        case \" $kids \" in *\" $w \"*) path=${path:+$path }$w ;; esac\n"
         "    done\n"
         "    case \" " << words(file_opts) << " \" in *\" $prev \"*) COMPREPLY=( $(compgen -f -- \"$cur\") ); return 0 ;; esac\n"
         "    local ch\n"
         "    ch=$(_stentorctl_choices \"$path $prev\")\n"
         "    if [[ -n \"$ch\" ]]; then COMPREPLY=( $(compgen -W \"$ch\" -- \"$cur\") ); return 0; fi\n"
         "    case \" " << words(value_opts) << " \" in *\" $prev \"*) COMPREPLY=(); return 0 ;; esac\n"
         "    if [[ \"$cur\" == -* ]]; then\n"
         "        COMPREPLY=( $(compgen -W \"$(_stentorctl_options \"$path\") $global --help\" -- \"$cur\") )\n"
         "    else\n"
         "        COMPREPLY=( $(compgen -W \"$(_stentorctl_children \"$path\")\" -- \"$cur\") )\n"
         "    fi\n"
         "    return 0\n"
         "}\n"
         "complete -F _stentorctl stentorctl\n";
    return s.str();
}

}  // namespace stentor::ctl
