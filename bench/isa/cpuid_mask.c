/* Hide AVX-512 (and AVX-VNNI, AMX) from every CPUID a process executes, so that
 * runtime-dispatching libraries (XNNPACK via cpuinfo, ATen, oneDNN) choose the kernels an
 * AVX2-only CPU such as AMD Zen 3 would run. Used by bench/avx2_only.py through LD_PRELOAD; bench code, not mobq.
 *
 * How: Linux's ARCH_SET_CPUID(0) makes the CPUID instruction fault (CPUID faulting, the
 * "cpuid_fault" flag in /proc/cpuinfo; KVM offers it to every guest). The SIGSEGV handler
 * below runs the real CPUID with faulting briefly off, clears the feature bits, writes the
 * result into the faulting thread's registers and steps over the 2-byte instruction.
 * The setting is per thread, inherited by threads created later and reset by execve, so the
 * constructor runs again in every process that keeps LD_PRELOAD in its environment.
 * It changes what software is told, not what the CPU executes: code compiled with
 * -march=native still runs AVX-512 (build peers with AVX2 flags instead).
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#define ARCH_GET_CPUID 0x1011
#define ARCH_SET_CPUID 0x1012

static struct sigaction previous;
static volatile uint64_t emulated;

static void set_cpuid_enabled(long enabled) { syscall(SYS_arch_prctl, ARCH_SET_CPUID, enabled); }

static void masked_cpuid(uint32_t leaf, uint32_t subleaf, uint32_t out[4]) {
  __asm__ volatile("cpuid"
                   : "=a"(out[0]), "=b"(out[1]), "=c"(out[2]), "=d"(out[3])
                   : "a"(leaf), "c"(subleaf));
  if (leaf == 7 && subleaf == 0) {
    /* EBX: avx512 f, dq, ifma, pf, er, cd, bw, vl */
    out[1] &= ~((1u << 16) | (1u << 17) | (1u << 21) | (1u << 26) | (1u << 27) | (1u << 28) |
                (1u << 30) | (1u << 31));
    /* ECX: avx512 vbmi, vbmi2, gfni (not on Zen 3), vnni, bitalg, vpopcntdq */
    out[2] &= ~((1u << 1) | (1u << 6) | (1u << 8) | (1u << 11) | (1u << 12) | (1u << 14));
    /* EDX: avx512 4vnniw, 4fmaps, vp2intersect, fp16; AMX bf16, tile, int8 (Intel) */
    out[3] &= ~((1u << 2) | (1u << 3) | (1u << 8) | (1u << 23) | (1u << 22) | (1u << 24) |
                (1u << 25));
  } else if (leaf == 7 && subleaf == 1) {
    /* EAX: avx-vnni, avx512 bf16, amx-fp16, avx-ifma */
    out[0] &= ~((1u << 4) | (1u << 5) | (1u << 21) | (1u << 23));
  }
}

static void on_sigsegv(int sig, siginfo_t *info, void *context) {
  ucontext_t *uc = (ucontext_t *)context;
  greg_t *regs = uc->uc_mcontext.gregs;
  const uint8_t *ip = (const uint8_t *)regs[REG_RIP];
  /* A faulting CPUID is a general-protection fault (SI_KERNEL); page faults are not and their
   * RIP may be unreadable, so only a #GP is checked for the CPUID opcode. */
  if (info->si_code != SI_KERNEL || ip[0] != 0x0f || ip[1] != 0xa2) { /* a real fault */
    if (previous.sa_flags & SA_SIGINFO && previous.sa_sigaction) {
      previous.sa_sigaction(sig, info, context);
      return;
    }
    signal(SIGSEGV, previous.sa_handler == SIG_IGN ? SIG_DFL : previous.sa_handler);
    return; /* the instruction faults again, now under the previous handler */
  }
  uint32_t out[4];
  set_cpuid_enabled(1);
  masked_cpuid((uint32_t)regs[REG_RAX], (uint32_t)regs[REG_RCX], out);
  set_cpuid_enabled(0);
  regs[REG_RAX] = out[0];
  regs[REG_RBX] = out[1];
  regs[REG_RCX] = out[2];
  regs[REG_RDX] = out[3];
  regs[REG_RIP] += 2;
  emulated++;
}

static void report(void) {
  if (getenv("MOBQ_CPUID_MASK_VERBOSE"))
    fprintf(stderr, "cpuid_mask: %llu CPUID instructions emulated in pid %d\n",
            (unsigned long long)emulated, (int)getpid());
}

__attribute__((constructor)) static void install(void) {
  struct sigaction action;
  memset(&action, 0, sizeof action);
  action.sa_sigaction = on_sigsegv;
  action.sa_flags = SA_SIGINFO | SA_NODEFER;
  sigemptyset(&action.sa_mask);
  if (sigaction(SIGSEGV, &action, &previous) != 0 ||
      syscall(SYS_arch_prctl, ARCH_SET_CPUID, 0L) != 0) {
    fprintf(stderr, "cpuid_mask: this kernel/CPU offers no CPUID faulting; refusing to run\n");
    _exit(3);
  }
  atexit(report);
}
