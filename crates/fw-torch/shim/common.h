// What both halves of fw-torch's shim share: C++ exceptions become
// malloc'ed messages (NULL: success) that never cross into Rust as unwinds.
#pragma once

#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>

namespace fwt {

inline char* message(const std::string& text) {
  char* copy = static_cast<char*>(std::malloc(text.size() + 1));
  if (copy != nullptr) {
    std::memcpy(copy, text.c_str(), text.size() + 1);
  }
  return copy;
}

template <typename F>
char* guarded(F&& work) {
  try {
    work();
    return nullptr;
  } catch (const std::exception& error) {
    return message(error.what());
  } catch (...) {
    return message("unknown C++ exception");
  }
}

}  // namespace fwt
