/*
 * sk_isa.h: the SIMD variants of the kernels, and how one is chosen.
 *
 * Each kernel file (softmax.c, losses.c) is compiled once per variant, with the
 * variant's compiler flags and -DSK_ISA=<name> (meson.build), and exports its
 * kernels as one table named after the variant: sk_softmax_kernels_avx512, ...
 * On x86-64 with a compiler that knows the ISA levels (SK_X86_DISPATCH):
 *
 *     name        flags                              runs on
 *     avx512bf16  -march=x86-64-v4 -mavx512bf16      avx512 and AVX512-BF16 (when the
 *                                                    compiler has it: SK_X86_BF16)
 *     avx512      -march=x86-64-v4                   AVX-512 F/BW/CD/DQ/VL (and x86-64-v3)
 *     avx2        -march=x86-64-v3                   AVX2, FMA, BMI1/2, F16C, MOVBE, LZCNT
 *     avx_fma     -mavx -mfma                        AVX and FMA without AVX2 (some VMs)
 *     avx         -mavx                              AVX
 *     sse2        (none)                             every x86-64 CPU
 *
 * elsewhere one variant, `baseline`, built with the default flags. At import, each
 * extension module takes the first variant of the list the CPU runs, or the one the
 * environment variable SOFTMAXKIT_SIMD names (`auto` or unset: the best). A name
 * that is not a variant of this build, or one this CPU cannot run, fails the import
 * with a ValueError naming the variable, the value and the choices (sk_pybuf.h):
 * the variable exists to test a given variant, and a test that quietly ran another
 * one would prove nothing.
 *
 * This replaced GCC's target_clones, whose choice is made by the dynamic loader and
 * cannot be forced, so not every variant could be tested on one machine.
 */
#ifndef SK_ISA_H
#define SK_ISA_H

#include <string.h>

#if defined(SK_X86_DISPATCH) && defined(SK_X86_BF16)
#define SK_ISA_LIST(X, arg)                                                              \
    X(arg, avx512bf16) X(arg, avx512) X(arg, avx2) X(arg, avx_fma) X(arg, avx) X(arg, sse2)
#define SK_ISA_FIRST_ 1 /* index of avx512 */
#elif defined(SK_X86_DISPATCH)
#define SK_ISA_LIST(X, arg) X(arg, avx512) X(arg, avx2) X(arg, avx_fma) X(arg, avx) X(arg, sse2)
#define SK_ISA_FIRST_ 0
#else
#define SK_ISA_LIST(X, arg) X(arg, baseline)
#endif

/* In a kernel file: the name of this variant's table of `type`. */
#define SK_ISA_TABLE(type) SK_CAT(type, SK_ISA)

/* In a module: declares every variant's table of `type`, and defines
 * `static const type *const name[]` listing them in SK_ISA_LIST's order. */
#define SK_ISA_DECLARE_(type, isa) extern const type type##_##isa;
#define SK_ISA_ADDRESS_(type, isa) &type##_##isa,
#define SK_ISA_TABLES(type, name)                                                        \
    SK_ISA_LIST(SK_ISA_DECLARE_, type)                                                   \
    static const type *const name[] = {SK_ISA_LIST(SK_ISA_ADDRESS_, type)}

/* The rest is for the modules, which choose; a kernel file is compiled with SK_ISA. */
#ifndef SK_ISA

#define SK_ISA_NAME_(unused, isa) #isa,
static const char *const sk_isa_names[] = {SK_ISA_LIST(SK_ISA_NAME_, _)};
#define SK_ISA_COUNT ((int)(sizeof sk_isa_names / sizeof sk_isa_names[0]))

/* Whether this CPU (and its OS, which must save the wider registers) runs variant i. */
static inline int sk_isa_supported(int i)
{
#if defined(SK_X86_DISPATCH)
    __builtin_cpu_init();
#if defined(SK_X86_BF16)
    if (i == 0)
        return __builtin_cpu_supports("x86-64-v4") && __builtin_cpu_supports("avx512bf16");
#endif
    switch (i - SK_ISA_FIRST_) {
    case 0: return __builtin_cpu_supports("x86-64-v4");
    case 1: return __builtin_cpu_supports("x86-64-v3");
    case 2: return __builtin_cpu_supports("avx") && __builtin_cpu_supports("fma");
    case 3: return __builtin_cpu_supports("avx");
    default: return 1;
    }
#else
    (void)i;
    return 1;
#endif
}

/* The variant to run: the best this CPU supports when `want` is NULL, empty or
 * "auto", else the one named. Returns its index, or -1 for an unknown name and
 * -2 for a variant this CPU cannot run. */
static inline int sk_isa_pick(const char *want)
{
    int auto_ = want == NULL || want[0] == '\0' || strcmp(want, "auto") == 0;
    for (int i = 0; i < SK_ISA_COUNT; i++) {
        if (auto_ ? sk_isa_supported(i) : strcmp(want, sk_isa_names[i]) == 0)
            return auto_ || sk_isa_supported(i) ? i : -2;
    }
    return -1;
}

#endif /* !SK_ISA */
#endif
