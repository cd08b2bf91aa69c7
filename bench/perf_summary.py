#!/usr/bin/env python3
"""bench/perf_summary.py SCRIPT_OUT: from `perf script -F ip,sym` output of a
call-graph profile (bench/profile.sh), the share of samples under the
request log (stream_log, by callee) and in malloc/free (by the first caller
outside the allocator)."""
import collections,sys
stacks=open(sys.argv[1]).read().split('\n\n')
tot=0; c=collections.Counter(); mallocby=collections.Counter(); mtot=0
ALLOC=('_int_malloc','_int_free','malloc','cfree@GLIBC_2.2.5','unlink_chunk.constprop.0','__libc_calloc','_int_realloc','realloc','malloc_consolidate','__libc_free','__libc_malloc','calloc','free','_int_free_merge_chunk','_int_free_create_chunk','tcache_get','__GI___libc_malloc','__GI___libc_free','__GI___libc_realloc')
for st in stacks:
    fr=[l.strip().split(None,1)[1] if len(l.strip().split(None,1))>1 else '?' for l in st.strip().split('\n') if l.strip()]
    fr=[f.replace(' (inlined)','') for f in fr]
    if not fr: continue
    tot+=1
    if 'stream_log' in fr:
        i=fr.index('stream_log')
        c[fr[i-1] if i>0 else 'self']+=1
    if fr[0] in ALLOC or fr[0].startswith('__memset') and len(fr)>1 and fr[1]=='wisp_calloc':
        mtot+=1
        for f in fr[1:]:
            if f not in ALLOC and f not in ('wisp_malloc','wisp_calloc','wisp_realloc'):
                mallocby[f]+=1;break
print('total samples',tot)
print('stream_log incl %.1f%%'%(100*sum(c.values())/tot), [(k,'%.1f'%(100*v/tot)) for k,v in c.most_common(15)])
print('malloc family %.1f%%'%(100*mtot/tot), [(k,'%.1f'%(100*v/tot)) for k,v in mallocby.most_common(25)])
