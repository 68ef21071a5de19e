// Declarations only: see ../../README.md. ProcessGroupGloo.hpp includes it
// and uses nothing of it.
#pragma once
