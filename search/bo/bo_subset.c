/* bo_subset.c — which observations a GP sees once there are too many for dense algebra
 * (ns_bo_subset, bo.h): the best ones, then a space-filling spread of the rest.
 * Not the policy of when to subset (bo.c decides, bo.h states the sizes). */
#include "search/bo/bo.h"

#include <math.h>
#include <stdlib.h>

typedef struct ranked {
    double y;
    int i;
} ranked;

/* by y, then by index: a total order, so qsort's instability cannot show */
static int cmp_ranked(const void *pa, const void *pb)
{
    const ranked *a = pa, *b = pb;
    if (a->y != b->y)
        return a->y < b->y ? -1 : 1;
    return (a->i > b->i) - (a->i < b->i);
}

static double dist2(const double *a, const double *b, int d)
{
    double s = 0;
    for (int k = 0; k < d; k++) {
        double t = a[k] - b[k];
        s += t * t;
    }
    return s;
}

int ns_bo_subset(const double *X, const double *y, int n, int d, int m, int n_best,
                 int *keep, ns_err *err)
{
    if (n < 0 || d < 1 || m < 0)
        return ns_err_set(err, NS_EINPUT, "bo: bad subset sizes (n %d, d %d, m %d)", n, d, m);
    if (n <= m) {
        for (int i = 0; i < n; i++)
            keep[i] = i;
        return NS_OK;
    }
    if (m == 0)
        return NS_OK;
    n_best = n_best < 1 ? 1 : n_best > m ? m : n_best;
    ranked *r = malloc((size_t)n * sizeof *r);
    double *near = malloc((size_t)n * sizeof *near); /* squared distance to the kept set */
    if (!r || !near) {
        free(r);
        free(near);
        return ns_err_set(err, NS_ERUNTIME, "bo: out of memory choosing %d of %d points", m, n);
    }
    for (int i = 0; i < n; i++) {
        r[i].y = y[i];
        r[i].i = i;
        near[i] = INFINITY;
    }
    qsort(r, (size_t)n, sizeof *r, cmp_ranked);
    /* near[i] < 0 marks a kept point; the others hold their squared distance to the
     * nearest kept one, updated as each is added (greedy maximin: O(n m d)) */
    for (int j = 0; j < m; j++) {
        int pick;
        if (j < n_best) {
            pick = r[j].i;
        } else {
            pick = -1;
            for (int i = 0; i < n; i++)
                if (near[i] >= 0 && (pick < 0 || near[i] > near[pick]))
                    pick = i;
        }
        near[pick] = -1;
        const double *xp = X + (size_t)pick * d;
        for (int i = 0; i < n; i++)
            if (near[i] >= 0) {
                double s = dist2(X + (size_t)i * d, xp, d);
                if (s < near[i])
                    near[i] = s;
            }
    }
    int k = 0;
    for (int i = 0; i < n; i++)
        if (near[i] < 0)
            keep[k++] = i;
    free(r);
    free(near);
    return NS_OK;
}
