using System.Text;

namespace SharpTune.Tokenizers;

/// <summary>
/// The result of encoding a text (or a pair of texts): token ids and everything aligned with them, like Hugging Face's
/// <c>Encoding</c>. <see cref="Offsets"/> are in Unicode code points of the input text(s), as in Hugging Face's Python
/// API; <see cref="Utf16Offsets"/> index .NET strings directly.
/// </summary>
public sealed class Encoding
{
    internal readonly List<int> IdList;
    internal readonly List<string> TokenList;
    internal readonly List<int> TypeIdList;
    internal readonly List<int> AttentionList;
    internal readonly List<int> SpecialList;
    internal readonly List<(int Start, int End)> OffsetList;
    internal readonly List<int> WordList;
    internal readonly List<int> SequenceList;
    internal readonly List<Encoding> OverflowList = [];
    internal string?[] Texts = [null, null];
    private (int Start, int End)[]? _codePointOffsets;

    internal Encoding(int capacity = 16)
    {
        IdList = new(capacity);
        TokenList = new(capacity);
        TypeIdList = new(capacity);
        AttentionList = new(capacity);
        SpecialList = new(capacity);
        OffsetList = new(capacity);
        WordList = new(capacity);
        SequenceList = new(capacity);
    }

    public int Length => IdList.Count;
    public IReadOnlyList<int> Ids => IdList;
    public IReadOnlyList<string> Tokens => TokenList;
    public IReadOnlyList<int> TypeIds => TypeIdList;
    public IReadOnlyList<int> AttentionMask => AttentionList;

    /// <summary>1 for tokens added by the post-processor (e.g. [CLS], [SEP]) and padding, 0 for tokens of the text.</summary>
    public IReadOnlyList<int> SpecialTokensMask => SpecialList;

    /// <summary>Index of the pre-tokenized word each token comes from; null for special and padding tokens.</summary>
    public IReadOnlyList<int?> WordIds => WordList.Select(w => w < 0 ? (int?)null : w).ToArray();

    /// <summary>Which input text (0 or 1) each token comes from; null for special and padding tokens.</summary>
    public IReadOnlyList<int?> SequenceIds => SequenceList.Select(s => s < 0 ? (int?)null : s).ToArray();

    /// <summary>Char offsets in UTF-16 code units of the corresponding input text.</summary>
    public IReadOnlyList<(int Start, int End)> Utf16Offsets => OffsetList;

    /// <summary>Char offsets in Unicode code points of the corresponding input text (Hugging Face Python convention).</summary>
    public IReadOnlyList<(int Start, int End)> Offsets => _codePointOffsets ??= ComputeCodePointOffsets();

    /// <summary>The parts cut off by truncation (with their own special tokens and padding).</summary>
    public IReadOnlyList<Encoding> Overflowing => OverflowList;

    internal void Add(int id, string token, int typeId, (int, int) offsets, int word, int sequence, bool special, int attention = 1)
    {
        IdList.Add(id);
        TokenList.Add(token);
        TypeIdList.Add(typeId);
        AttentionList.Add(attention);
        SpecialList.Add(special ? 1 : 0);
        OffsetList.Add(offsets);
        WordList.Add(word);
        SequenceList.Add(sequence);
        _codePointOffsets = null;
    }

    /// <summary>Appends all tokens of <paramref name="other"/> with the given type id.</summary>
    internal void Append(Encoding other, int? typeId = null)
    {
        for (var i = 0; i < other.Length; i++)
            Add(other.IdList[i], other.TokenList[i], typeId ?? other.TypeIdList[i], other.OffsetList[i], other.WordList[i],
                other.SequenceList[i], other.SpecialList[i] == 1, other.AttentionList[i]);
        for (var s = 0; s < 2; s++)
            Texts[s] ??= other.Texts[s];
    }

    internal Encoding Slice(int start, int end)
    {
        var slice = new Encoding(end - start) { Texts = (string?[])Texts.Clone() };
        for (var i = start; i < end; i++)
            slice.Add(IdList[i], TokenList[i], TypeIdList[i], OffsetList[i], WordList[i], SequenceList[i], SpecialList[i] == 1, AttentionList[i]);
        return slice;
    }

    internal void SetSequence(int sequence, string text)
    {
        for (var i = 0; i < SequenceList.Count; i++)
            if (SequenceList[i] >= 0)
                SequenceList[i] = sequence;
        Texts = sequence == 0 ? [text, null] : [null, text];
    }

    /// <summary>Pads to <paramref name="length"/> tokens (this and its overflowing parts).</summary>
    internal void Pad(int length, int padId, int padTypeId, string padToken, bool left)
    {
        foreach (var overflow in OverflowList)
            overflow.Pad(length, padId, padTypeId, padToken, left);
        var missing = length - Length;
        if (missing <= 0)
            return;
        if (!left)
        {
            for (var i = 0; i < missing; i++)
                Add(padId, padToken, padTypeId, (0, 0), -1, -1, special: true, attention: 0);
            return;
        }
        IdList.InsertRange(0, Enumerable.Repeat(padId, missing));
        TokenList.InsertRange(0, Enumerable.Repeat(padToken, missing));
        TypeIdList.InsertRange(0, Enumerable.Repeat(padTypeId, missing));
        AttentionList.InsertRange(0, Enumerable.Repeat(0, missing));
        SpecialList.InsertRange(0, Enumerable.Repeat(1, missing));
        OffsetList.InsertRange(0, Enumerable.Repeat((0, 0), missing));
        WordList.InsertRange(0, Enumerable.Repeat(-1, missing));
        SequenceList.InsertRange(0, Enumerable.Repeat(-1, missing));
        _codePointOffsets = null;
    }

    private (int, int)[] ComputeCodePointOffsets()
    {
        var maps = Texts.Select(t => t is not null && HasSurrogates(t) ? CodePointIndex(t) : null).ToArray();
        var result = new (int, int)[OffsetList.Count];
        for (var i = 0; i < result.Length; i++)
        {
            var (start, end) = OffsetList[i];
            var map = SequenceList[i] >= 0 ? maps[SequenceList[i]] : null;
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
        var sb = new StringBuilder("Encoding(");
        sb.Append(string.Join(' ', TokenList)).Append(')');
        return sb.ToString();
    }
}
