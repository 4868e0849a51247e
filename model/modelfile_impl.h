/* modelfile_impl.h — what writing (modelfile.c) and reading (modelfile_load.c) the model
 * and ensemble files share: the magic numbers, the fixed sizes and the rules a file's
 * fields must keep. Inside model/ only. */
#ifndef NS_MODELFILE_IMPL_H
#define NS_MODELFILE_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "model/modelfile.h"

/* The first bytes of a model file and of an ensemble file. */
static const unsigned char MAGIC[8] = {'N', 'S', 'M', 'O', 'D', 'E', 'L', '\0'};
static const unsigned char ENS_MAGIC[8] = {'N', 'S', 'E', 'N', 'S', 'M', 'B', '\0'};
enum {
    HEADER_BYTES = 20, /* magic, version, file size: the same in a model and an ensemble */
    CRC_BYTES = 4,
    ENS_VERSION = 1,
    ENS_HEADER_BYTES = HEADER_BYTES + 4, /* and the member count */
    TOOL_VERSION_MAX = (int)sizeof(((ns_model_file *)0)->tool_version) - 1,
};

static inline int dim_ok(uint64_t v) { return v >= 1 && v <= NS_MODEL_MAX_DIM; }
static inline int prob_ok(float p) { return p >= 0.0f && p < 1.0f; } /* false for NaN */

/* The training statistics of feature j against their invariants: -1 if they hold, else
 * which array is wrong (0 min, 1 max, 2 mean, 3 std; ns_mf_stat_name names it) with the
 * reason in *why. */
int ns_mf_stat_problem(const ns_feature_stats *fs, int j, const char **why);
extern const char *const ns_mf_stat_name[4];
/* Whether ensemble member b may be averaged with member a: 0, or 1 with what differs in why. */
int ns_mf_members_differ(const ns_model_file *a, const ns_model_file *b, char *why, size_t cap);
/* "784-256-128-10" for messages; returns buf. */
const char *ns_mf_arch_str(const ns_mlp_spec *s, char *buf, size_t cap);

#endif
