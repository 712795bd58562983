using System.Text;

namespace SharpTune.Tokenizers.Pipeline;

/// <summary>
/// A piece of text as it goes through normalization and pre-tokenization, remembering for every UTF-16 char of the
/// current text the original UTF-16 range it came from (as Hugging Face's NormalizedString does per byte), so token
/// offsets always point into the text the caller gave.
/// </summary>
public sealed class NormalizedString
{
    // Slices share their parent's alignment arrays (char i maps to index _offset + i) until someone needs them alone.
    // Null arrays mean the identity alignment of an untouched original text: char i comes from original char _offset + i,
    // except that positions before _floor map to char _floor (a prefix prepended without building arrays).
    private int[]? _starts;
    private int[]? _ends;
    private int _offset;
    private int _floor = int.MinValue;
    // Slices also share their parent's text (chars _textStart.._textStart + Length of _source): most words are only
    // read as a span by the model, so their substring is made only when someone asks for Text.
    private string _source;
    private int _textStart;

    public NormalizedString(string text, int[] starts, int[] ends)
        : this(text, starts, ends, 0)
    {
    }

    private NormalizedString(string source, int textStart, int length, int[]? starts, int[]? ends, int offset, int floor)
    {
        _floor = floor;
        _source = source;
        _textStart = textStart;
        Length = length;
        _starts = starts;
        _ends = ends;
        _offset = offset;
    }

    private NormalizedString(string text, int[] starts, int[] ends, int offset)
        : this(text, 0, text.Length, starts, ends, offset, int.MinValue)
    {
    }

    /// <summary>The current (normalized) text.</summary>
    public string Text
    {
        get
        {
            if (_textStart != 0 || Length != _source.Length)
            {
                _source = _source.Substring(_textStart, Length);
                _textStart = 0;
            }
            return _source;
        }
    }

    /// <summary>The current text without materializing a slice's substring.</summary>
    public ReadOnlySpan<char> Span => _source.AsSpan(_textStart, Length);

    /// <summary>Original start offset (UTF-16, in the caller's text) of each char of <see cref="Text"/>.</summary>
    public int[] Starts
    {
        get
        {
            Materialize();
            return _starts!;
        }
    }

    /// <summary>Original end offset (exclusive) of each char of <see cref="Text"/>.</summary>
    public int[] Ends
    {
        get
        {
            Materialize();
            return _ends!;
        }
    }

    private void Materialize()
    {
        if (_starts is null || _ends is null)
        {
            _starts = new int[Length];
            _ends = new int[Length];
            for (var i = 0; i < Length; i++)
            {
                _starts[i] = Math.Max(_offset + i, _floor);
                _ends[i] = _starts[i] + 1;
            }
            _offset = 0;
            return;
        }
        if (_offset == 0 && _starts.Length == Length)
            return;
        _starts = _starts[_offset..(_offset + Length)];
        _ends = _ends[_offset..(_offset + Length)];
        _offset = 0;
    }

    public int Length { get; private set; }

    /// <summary>A slice <c>[start, end)</c> of <paramref name="original"/> with identity alignment.</summary>
    public static NormalizedString FromOriginal(string original, int start, int end) =>
        new(original, start, end - start, null, null, start, int.MinValue);

    /// <summary>The sub-string <c>[start, end)</c> of the current text, keeping its alignment.</summary>
    public NormalizedString Slice(int start, int end)
    {
        if (start == 0 && end == Length)
            return this;
        return new NormalizedString(_source, _textStart + start, end - start, _starts, _ends, _offset + start, _floor);
    }

    /// <summary>Original range covered by the current chars <c>[start, end)</c>.</summary>
    public (int Start, int End) OriginalRange(int start, int end)
    {
        if (Length == 0)
            return (0, 0);
        if (end <= start)
        {
            var at = _offset + Math.Min(start, Length - 1);
            return _starts is null ? (Math.Max(at, _floor), Math.Max(at, _floor)) : (_starts[at], _starts[at]);
        }
        return _starts is null || _ends is null
            ? (Math.Max(_offset + start, _floor), Math.Max(_offset + end - 1, _floor) + 1)
            : (_starts[_offset + start], _ends[_offset + end - 1]);
    }

    /// <summary>Replaces the content with what <paramref name="builder"/> built.</summary>
    internal void Assign(Builder builder)
    {
        SetText(builder.Text.ToString());
        _starts = builder.Starts.ToArray();
        _ends = builder.Ends.ToArray();
        _offset = 0;
    }

    /// <summary>Replaces the text by one of the same length whose chars map one-to-one (alignment unchanged).</summary>
    internal void ReplaceSameLength(string text)
    {
        if (text.Length != Length)
            throw new ArgumentException("length must not change", nameof(text));
        SetText(text);
    }

    private void SetText(string text)
    {
        _source = text;
        _textStart = 0;
        Length = text.Length;
    }

    /// <summary>Prepends <paramref name="prefix"/>, aligned with the first char (as Hugging Face does).</summary>
    public void Prepend(string prefix)
    {
        if (Text.Length == 0)
            return;
        if (_starts is null)
        {
            // Identity alignment: the prefix maps below the first char's position, which the floor clamps to it.
            _floor = Math.Max(_offset, _floor);
            _offset -= prefix.Length;
            SetText(string.Concat(prefix, Span));
            return;
        }
        var builder = new Builder(Text.Length + prefix.Length);
        foreach (var c in prefix)
            builder.Append(c, Starts[0], Ends[0]);
        builder.AppendRange(this, 0, Text.Length);
        Assign(builder);
    }

    /// <summary>
    /// Whether <see cref="MapRunes"/> could change anything: some rune satisfies <paramref name="changes"/>, or the text
    /// holds an invalid UTF-16 sequence (which MapRunes replaces by U+FFFD). Lets normalizers skip the rebuild.
    /// Chars in <c>[keptFrom, keptTo]</c> (not surrogates) are known to stay: runs of them are skipped with a vector search.
    /// </summary>
    internal bool AnyRune(Func<Rune, bool> changes, char keptFrom, char keptTo)
    {
        var text = Span;
        for (var i = 0; i < text.Length;)
        {
            var skip = text[i..].IndexOfAnyExceptInRange(keptFrom, keptTo);
            if (skip < 0)
                return false;
            i += skip;
            if (Rune.DecodeFromUtf16(text[i..], out var rune, out var consumed) != System.Buffers.OperationStatus.Done || changes(rune))
                return true;
            i += consumed;
        }
        return false;
    }

    /// <summary>Applies a per-rune mapping; <paramref name="map"/> writes the replacement (possibly empty or longer) into the builder.</summary>
    internal void MapRunes(Action<Rune, int, int, Builder> map)
    {
        var builder = new Builder(Text.Length + 8);
        for (var i = 0; i < Text.Length;)
        {
            Rune.DecodeFromUtf16(Text.AsSpan(i), out var rune, out var consumed);
            map(rune, Starts[i], Ends[i + consumed - 1], builder);
            i += consumed;
        }
        Assign(builder);
    }

    /// <summary>Accumulates new text with its alignment.</summary>
    internal sealed class Builder(int capacity)
    {
        public StringBuilder Text { get; } = new(capacity);
        public List<int> Starts { get; } = new(capacity);
        public List<int> Ends { get; } = new(capacity);

        public void Append(char c, int start, int end)
        {
            Text.Append(c);
            Starts.Add(start);
            Ends.Add(end);
        }

        /// <summary>Appends every char of <paramref name="s"/> aligned with the original range <c>[start, end)</c>.</summary>
        public void Append(ReadOnlySpan<char> s, int start, int end)
        {
            foreach (var c in s)
                Append(c, start, end);
        }

        public void Append(Rune rune, int start, int end)
        {
            Span<char> buffer = stackalloc char[2];
            var n = rune.EncodeToUtf16(buffer);
            Append(buffer[..n], start, end);
        }

        public void AppendRange(NormalizedString source, int start, int end)
        {
            Text.Append(source.Span[start..end]);
            for (var i = start; i < end; i++)
            {
                Starts.Add(source.Starts[i]);
                Ends.Add(source.Ends[i]);
            }
        }
    }
}
