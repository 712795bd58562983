using System.Runtime.InteropServices;
using System.Text;

namespace SharpTune.Tokenizers;

/// <summary>
/// The result of encoding a text (or a pair of texts): token ids and everything aligned with them, like Hugging Face's
/// <c>Encoding</c>. <see cref="Offsets"/> are in Unicode code points of the input text(s), as in Hugging Face's Python
/// API; <see cref="Utf16Offsets"/> index .NET strings directly.
/// </summary>
public sealed class TokenEncoding
{
    /// <summary>Everything about one token, stored together: one list per encoding instead of one per field (32 bytes).</summary>
    internal record struct Entry(int Id, string Token, int TypeId, (int Start, int End) Offsets, int Word, sbyte Sequence,
        bool Special, byte Attention);

    internal readonly List<Entry> Entries;
    private List<TokenEncoding>? _overflow;
    internal List<TokenEncoding> OverflowList => _overflow ??= []; // created on first use: most encodings never overflow
    internal string?[] Texts = [null, null];
    private (int Start, int End)[]? _codePointOffsets;
    private IReadOnlyList<int>? _ids, _typeIds, _attention, _special;
    private IReadOnlyList<string>? _tokens;
    private IReadOnlyList<(int Start, int End)>? _utf16Offsets;

    internal TokenEncoding(int capacity = 16) => Entries = new(capacity);

    public int Length => Entries.Count;
    public IReadOnlyList<int> Ids => _ids ??= new Column<int>(Entries, static e => e.Id);
    public IReadOnlyList<string> Tokens => _tokens ??= new Column<string>(Entries, static e => e.Token);
    public IReadOnlyList<int> TypeIds => _typeIds ??= new Column<int>(Entries, static e => e.TypeId);
    public IReadOnlyList<int> AttentionMask => _attention ??= new Column<int>(Entries, static e => e.Attention);

    /// <summary>1 for tokens added by the post-processor (e.g. [CLS], [SEP]) and padding, 0 for tokens of the text.</summary>
    public IReadOnlyList<int> SpecialTokensMask => _special ??= new Column<int>(Entries, static e => e.Special ? 1 : 0);

    /// <summary>Index of the pre-tokenized word each token comes from; null for special and padding tokens.</summary>
    public IReadOnlyList<int?> WordIds => Entries.Select(e => e.Word < 0 ? (int?)null : e.Word).ToArray();

    /// <summary>Which input text (0 or 1) each token comes from; null for special and padding tokens.</summary>
    public IReadOnlyList<int?> SequenceIds => Entries.Select(e => e.Sequence < 0 ? (int?)null : e.Sequence).ToArray();

    /// <summary>Char offsets in UTF-16 code units of the corresponding input text.</summary>
    public IReadOnlyList<(int Start, int End)> Utf16Offsets => _utf16Offsets ??= new Column<(int, int)>(Entries, static e => e.Offsets);

    /// <summary>Char offsets in Unicode code points of the corresponding input text (Hugging Face Python convention).</summary>
    public IReadOnlyList<(int Start, int End)> Offsets => _codePointOffsets ??= ComputeCodePointOffsets();

    /// <summary>The parts cut off by truncation (with their own special tokens and padding).</summary>
    public IReadOnlyList<TokenEncoding> Overflowing => (IReadOnlyList<TokenEncoding>?)_overflow ?? [];

    internal void Add(int id, string token, int typeId, (int, int) offsets, int word, int sequence, bool special, int attention = 1)
    {
        Entries.Add(new Entry(id, token, typeId, offsets, word, (sbyte)sequence, special, (byte)attention));
        _codePointOffsets = null;
    }

    /// <summary>Inserts a special token (post-processor) at <paramref name="index"/>.</summary>
    internal void Insert(int index, int id, string token, int typeId)
    {
        Entries.Insert(index, new Entry(id, token, typeId, (0, 0), -1, -1, Special: true, Attention: 1));
        _codePointOffsets = null;
    }

    /// <summary>Sets the type id of tokens <c>[start, end)</c>.</summary>
    internal void SetTypeIds(int start, int end, int typeId)
    {
        foreach (ref var entry in CollectionsMarshal.AsSpan(Entries)[start..end])
            entry.TypeId = typeId;
    }

    /// <summary>Appends all tokens of <paramref name="other"/> with the given type id.</summary>
    internal void Append(TokenEncoding other, int? typeId = null)
    {
        Entries.EnsureCapacity(Entries.Count + other.Length);
        foreach (var entry in other.Entries)
            Entries.Add(typeId is { } t ? entry with { TypeId = t } : entry);
        for (var s = 0; s < 2; s++)
            Texts[s] ??= other.Texts[s];
        _codePointOffsets = null;
    }

    internal TokenEncoding Slice(int start, int end)
    {
        var slice = new TokenEncoding(end - start) { Texts = (string?[])Texts.Clone() };
        slice.Entries.AddRange(CollectionsMarshal.AsSpan(Entries)[start..end]);
        return slice;
    }

    /// <summary>Replaces all tokens by those of <paramref name="source"/>.</summary>
    internal void ReplaceWith(TokenEncoding source)
    {
        Entries.Clear();
        Append(source);
    }

    internal void SetSequence(int sequence, string text)
    {
        foreach (ref var entry in CollectionsMarshal.AsSpan(Entries))
            if (entry.Sequence >= 0)
                entry.Sequence = (sbyte)sequence;
        Texts = sequence == 0 ? [text, null] : [null, text];
    }

    /// <summary>Sets the UTF-16 offsets of token <paramref name="index"/>.</summary>
    internal void SetOffsets(int index, (int Start, int End) offsets)
    {
        CollectionsMarshal.AsSpan(Entries)[index].Offsets = offsets;
        _codePointOffsets = null;
    }

    /// <summary>Pads to <paramref name="length"/> tokens (this and its overflowing parts).</summary>
    internal void Pad(int length, int padId, int padTypeId, string padToken, bool left)
    {
        foreach (var overflow in Overflowing)
            overflow.Pad(length, padId, padTypeId, padToken, left);
        var missing = length - Length;
        if (missing <= 0)
            return;
        var pad = new Entry(padId, padToken, padTypeId, (0, 0), -1, -1, Special: true, Attention: 0);
        Entries.InsertRange(left ? 0 : Length, Enumerable.Repeat(pad, missing));
        _codePointOffsets = null;
    }

    /// <summary>A read-only view of one field of the entries.</summary>
    private sealed class Column<T>(List<Entry> entries, Func<Entry, T> field) : IReadOnlyList<T>
    {
        public T this[int index] => field(entries[index]);
        public int Count => entries.Count;

        public IEnumerator<T> GetEnumerator()
        {
            for (var i = 0; i < entries.Count; i++)
                yield return field(entries[i]);
        }

        System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
    }

    private (int, int)[] ComputeCodePointOffsets()
    {
        var maps = Texts.Select(t => t is not null && HasSurrogates(t) ? CodePointIndex(t) : null).ToArray();
        var result = new (int, int)[Entries.Count];
        for (var i = 0; i < result.Length; i++)
        {
            var (start, end) = Entries[i].Offsets;
            var map = Entries[i].Sequence >= 0 ? maps[Entries[i].Sequence] : null;
            result[i] = map is null ? (start, end) : (map[start], map[end]);
        }
        return result;
    }

    private static bool HasSurrogates(string s)
    {
        foreach (var c in s)
            if (char.IsSurrogate(c))
                return true;
        return false;
    }

    /// <summary>For every UTF-16 index 0..Length, the number of code points before it.</summary>
    private static int[] CodePointIndex(string s)
    {
        var map = new int[s.Length + 1];
        var count = 0;
        for (var i = 0; i < s.Length; i++)
        {
            map[i] = count;
            if (!(char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1])))
                count++;
            else
            {
                map[i + 1] = count;
                count++;
                i++;
            }
        }
        map[s.Length] = count;
        return map;
    }

    public override string ToString()
    {
        var sb = new StringBuilder("TokenEncoding(");
        sb.Append(string.Join(' ', Tokens)).Append(')');
        return sb.ToString();
    }
}
