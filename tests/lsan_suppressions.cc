// LeakSanitizer suppressions for the sanitizer build's tests (linked into every sanitizable test
// by dino_test when DINO_SANITIZE is on).
//
// libcares: gRPC's c-ares DNS resolver keeps a few bytes per resolved hostname ("localhost" in the
// TLS and dinoctl tests) in process-lifetime state that Debian's libcares 1.18 never frees. The
// leak is in the library, not in dinotrain, and does not grow with use.
extern "C" const char* __lsan_default_suppressions() { return "leak:libcares.so\n"; }
