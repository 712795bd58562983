using System.Text;

namespace SharpTune.Tokenizers.Pipeline;

/// <summary>
/// A piece of text as it goes through normalization and pre-tokenization, remembering for every UTF-16 char of the
/// current text the original UTF-16 range it came from (as Hugging Face's NormalizedString does per byte), so token
/// offsets always point into the text the caller gave.
/// </summary>
public sealed class NormalizedString
{
    public NormalizedString(string text, int[] starts, int[] ends)
    {
        Text = text;
        Starts = starts;
        Ends = ends;
    }

    /// <summary>The current (normalized) text.</summary>
    public string Text { get; private set; }

    /// <summary>Original start offset (UTF-16, in the caller's text) of each char of <see cref="Text"/>.</summary>
    public int[] Starts { get; private set; }

    /// <summary>Original end offset (exclusive) of each char of <see cref="Text"/>.</summary>
    public int[] Ends { get; private set; }

    public int Length => Text.Length;

    /// <summary>A slice <c>[start, end)</c> of <paramref name="original"/> with identity alignment.</summary>
    public static NormalizedString FromOriginal(string original, int start, int end)
    {
        var length = end - start;
        var starts = new int[length];
        var ends = new int[length];
        for (var i = 0; i < length; i++)
        {
            starts[i] = start + i;
            ends[i] = start + i + 1;
        }
        return new NormalizedString(original.Substring(start, length), starts, ends);
    }

    /// <summary>The sub-string <c>[start, end)</c> of the current text, keeping its alignment.</summary>
    public NormalizedString Slice(int start, int end)
    {
        if (start == 0 && end == Text.Length)
            return this;
        return new NormalizedString(Text.Substring(start, end - start), Starts[start..end], Ends[start..end]);
    }

    /// <summary>Original range covered by the current chars <c>[start, end)</c>.</summary>
    public (int Start, int End) OriginalRange(int start, int end)
    {
        if (Text.Length == 0)
            return (0, 0);
        if (end <= start)
        {
            var at = Math.Min(start, Text.Length - 1);
            return (Starts[at], Starts[at]);
        }
        return (Starts[start], Ends[end - 1]);
    }

    /// <summary>Replaces the content with what <paramref name="builder"/> built.</summary>
    internal void Assign(Builder builder)
    {
        Text = builder.Text.ToString();
        Starts = builder.Starts.ToArray();
        Ends = builder.Ends.ToArray();
    }

    /// <summary>Prepends <paramref name="prefix"/>, aligned with the first char (as Hugging Face does).</summary>
    public void Prepend(string prefix)
    {
        if (Text.Length == 0)
            return;
        var builder = new Builder(Text.Length + prefix.Length);
        foreach (var c in prefix)
            builder.Append(c, Starts[0], Ends[0]);
        builder.AppendRange(this, 0, Text.Length);
        Assign(builder);
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
            Text.Append(source.Text, start, end - start);
            for (var i = start; i < end; i++)
            {
                Starts.Add(source.Starts[i]);
                Ends.Add(source.Ends[i]);
            }
        }
    }
}
