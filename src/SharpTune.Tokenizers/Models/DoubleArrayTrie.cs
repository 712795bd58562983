namespace SharpTune.Tokenizers.Models;

/// <summary>
/// A double-array trie over UTF-16 chars holding several key sets, each under its own root: a step from one node to the
/// next is two array reads (no hashing, no string), so the longest key at a text position costs one walk over the text.
/// </summary>
internal sealed class DoubleArrayTrie
{
    // Node = slot index. Child of s by char code c sits at slot Base[s] + c, and is one only when its Check is s.
    private struct Slot
    {
        public int Base;
        public int Check; // parent slot; Free when unused, Root for the roots
        public int Value; // the key's value when a key ends here, else -1
    }

    private const int Free = -1, Root = -2;

    private readonly int[] _codes = new int[char.MaxValue + 1]; // char → dense code ≥ 1; 0: the char ends in no key
    private Slot[] _slots;
    private int _firstFree;

    /// <param name="keySets">Key set i goes under root i: the node <see cref="LongestMatch"/> takes as its root.</param>
    public DoubleArrayTrie(IReadOnlyList<IReadOnlyList<(string Key, int Value)>> keySets)
    {
        // Frequent chars get small codes: children of a node then pack close together.
        var counts = new Dictionary<char, int>();
        foreach (var keys in keySets)
            foreach (var (key, _) in keys)
                foreach (var c in key)
                    counts[c] = counts.GetValueOrDefault(c) + 1;
        var code = 0;
        foreach (var (c, _) in counts.OrderByDescending(p => p.Value).ThenBy(p => p.Key))
            _codes[c] = ++code;

        _slots = NewSlots(Math.Max(1024, keySets.Sum(k => k.Count) * 4));
        for (var root = 0; root < keySets.Count; root++)
            _slots[root].Check = Root;
        _firstFree = keySets.Count;
        for (var root = 0; root < keySets.Count; root++)
        {
            var keys = keySets[root].OrderBy(k => k.Key, StringComparer.Ordinal).ToArray();
            if (keys.Length > 0)
                Insert(root, keys);
        }
    }

    /// <summary>
    /// The longest key under <paramref name="root"/> that is a non-empty prefix of <c>text[start..]</c> and ends on a
    /// code point boundary (never between the two halves of a surrogate pair): its value and end, or (-1, start).
    /// </summary>
    public (int Value, int End) LongestMatch(int root, ReadOnlySpan<char> text, int start)
    {
        var slots = _slots;
        var codes = _codes;
        int node = root, value = -1, end = start;
        for (var i = start; i < text.Length;)
        {
            var next = slots[node].Base + codes[text[i]];
            if ((uint)next >= (uint)slots.Length || slots[next].Check != node)
                break;
            node = next;
            i++;
            if (slots[node].Value >= 0 && (i == text.Length || !char.IsLowSurrogate(text[i]) || !char.IsHighSurrogate(text[i - 1])))
            {
                value = slots[node].Value;
                end = i;
            }
        }
        return (value, end);
    }

    /// <summary>Places the keys (sorted) under <paramref name="root"/>, depth first (an explicit stack: keys can be long).</summary>
    private void Insert(int root, (string Key, int Value)[] keys)
    {
        // Each pending node: its slot and the run of keys keys[From..To] sharing its first Depth chars.
        var pending = new Stack<(int Node, int From, int To, int Depth)>();
        pending.Push((root, 0, keys.Length, 0));
        var children = new List<(int Code, int From, int To)>();
        while (pending.TryPop(out var item))
        {
            var (node, from, to, depth) = item;
            if (keys[from].Key.Length == depth)
                _slots[node].Value = keys[from++].Value; // the shortest key sorts first: it ends at this node
            if (from == to)
                continue;
            // Children: one per distinct next char, each over its run of keys.
            children.Clear();
            for (var i = from; i < to;)
            {
                var c = keys[i].Key[depth];
                var j = i + 1;
                while (j < to && keys[j].Key[depth] == c)
                    j++;
                children.Add((_codes[c], i, j));
                i = j;
            }
            children.Sort((a, b) => a.Code.CompareTo(b.Code));
            var @base = FindBase(children);
            _slots[node].Base = @base;
            foreach (var (code, childFrom, childTo) in children)
            {
                _slots[@base + code].Check = node;
                pending.Push((@base + code, childFrom, childTo, depth + 1));
            }
            while (_firstFree < _slots.Length && _slots[_firstFree].Check != Free)
                _firstFree++;
        }
    }

    /// <summary>First base whose slots for all the child codes (ascending) are free; grows the array when needed.</summary>
    private int FindBase(List<(int Code, int From, int To)> children)
    {
        for (var pos = _firstFree; ; pos++)
        {
            var @base = pos - children[0].Code;
            if (@base + children[^1].Code >= _slots.Length)
            {
                var grown = NewSlots(Math.Max(_slots.Length * 3 / 2, @base + children[^1].Code + 1));
                _slots.CopyTo(grown, 0);
                _slots = grown;
            }
            if (_slots[pos].Check != Free)
                continue;
            var fits = true;
            for (var i = 1; i < children.Count && fits; i++)
                fits = _slots[@base + children[i].Code].Check == Free;
            if (fits)
                return @base;
        }
    }

    private static Slot[] NewSlots(int length)
    {
        var slots = new Slot[length];
        slots.AsSpan().Fill(new Slot { Check = Free, Value = -1 });
        return slots;
    }
}
