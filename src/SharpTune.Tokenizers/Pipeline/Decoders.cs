using System.Text.Json.Nodes;
using System.Text;
using SharpTune.Tokenizers.Loading;

namespace SharpTune.Tokenizers.Pipeline;

/// <summary>Turns tokens back into text (Hugging Face "decoder"): each step maps the token list to a new one.</summary>
public interface IDecoder
{
    List<string> DecodeChain(List<string> tokens);

    /// <summary>This decoder as a tokenizer.json "decoder" object.</summary>
    JsonObject ToJson();
}

public sealed class SequenceDecoder(IReadOnlyList<IDecoder> decoders) : IDecoder
{
    public JsonObject ToJson() => Definitions.Typed("Sequence", ("decoders", Definitions.Array(Decoders.Select(d => d.ToJson()))));

    public IReadOnlyList<IDecoder> Decoders { get; } = decoders;

    public List<string> DecodeChain(List<string> tokens)
    {
        foreach (var decoder in Decoders)
            tokens = decoder.DecodeChain(tokens);
        return tokens;
    }
}

/// <summary>Maps byte-level chars back to bytes and decodes UTF-8 (invalid bytes become U+FFFD).</summary>
public sealed class ByteLevelDecoder : IDecoder
{
    public JsonObject ToJson() => Definitions.Typed("ByteLevel", ("add_prefix_space", true), ("trim_offsets", true), ("use_regex", true));

    public List<string> DecodeChain(List<string> tokens)
    {
        var bytes = new List<byte>();
        foreach (var token in tokens)
            foreach (var c in token)
            {
                if (ByteLevelAlphabet.CharToByte.TryGetValue(c, out var b))
                    bytes.Add(b);
                else
                    bytes.AddRange(System.Text.Encoding.UTF8.GetBytes(c.ToString()));
            }
        return [System.Text.Encoding.UTF8.GetString(bytes.ToArray())];
    }
}

/// <summary>Joins WordPiece tokens: continuation pieces glue to the previous one, others get a space; optional cleanup.</summary>
public sealed class WordPieceDecoder(string prefix, bool cleanup) : IDecoder
{
    public JsonObject ToJson() => Definitions.Typed("WordPiece", ("prefix", Prefix), ("cleanup", Cleanup));

    public string Prefix { get; } = prefix;
    public bool Cleanup { get; } = cleanup;

    public List<string> DecodeChain(List<string> tokens)
    {
        var result = new List<string>(tokens.Count);
        for (var i = 0; i < tokens.Count; i++)
        {
            var token = tokens[i];
            if (i != 0)
                token = token.StartsWith(Prefix, StringComparison.Ordinal) ? token[Prefix.Length..] : " " + token;
            result.Add(Cleanup ? CleanupSpaces(token) : token);
        }
        return result;
    }

    /// <summary>Hugging Face's clean_up_tokenization, applied per token as the Rust decoder does.</summary>
    internal static string CleanupSpaces(string s) => s
        .Replace(" .", ".").Replace(" ?", "?").Replace(" !", "!").Replace(" ,", ",").Replace(" ' ", "'")
        .Replace(" n't", "n't").Replace(" 'm", "'m").Replace(" do not", " don't").Replace(" 's", "'s")
        .Replace(" 've", "'ve").Replace(" 're", "'re");
}

/// <summary>▁ back to spaces; the space added in front of the text is removed.</summary>
public sealed class MetaspaceDecoder(char replacement, PrependScheme prependScheme) : IDecoder
{
    public JsonObject ToJson() => Definitions.Typed("Metaspace", ("replacement", Replacement.ToString()), ("prepend_scheme", PrependScheme.ToString().ToLowerInvariant()), ("split", true));

    public char Replacement { get; } = replacement;
    public PrependScheme PrependScheme { get; } = prependScheme;

    public List<string> DecodeChain(List<string> tokens)
    {
        var result = new List<string>(tokens.Count);
        for (var i = 0; i < tokens.Count; i++)
        {
            var token = tokens[i].Replace(Replacement, ' ');
            if (i == 0 && PrependScheme != PrependScheme.Never && token.StartsWith(' '))
                token = token[1..];
            result.Add(token);
        }
        return result;
    }
}

/// <summary>Turns runs of &lt;0xXX&gt; tokens back into text (U+FFFD per byte when not valid UTF-8).</summary>
public sealed class ByteFallbackDecoder : IDecoder
{
    public JsonObject ToJson() => Definitions.Typed("ByteFallback");

    private static readonly UTF8Encoding Strict = new(false, throwOnInvalidBytes: true);

    public List<string> DecodeChain(List<string> tokens)
    {
        var result = new List<string>(tokens.Count);
        var pending = new List<byte>();
        foreach (var token in tokens)
        {
            if (token.Length == 6 && token.StartsWith("<0x", StringComparison.Ordinal) && token[5] == '>'
                && byte.TryParse(token.AsSpan(3, 2), System.Globalization.NumberStyles.HexNumber, null, out var b))
            {
                pending.Add(b);
                continue;
            }
            Flush(pending, result);
            result.Add(token);
        }
        Flush(pending, result);
        return result;
    }

    private static void Flush(List<byte> pending, List<string> result)
    {
        if (pending.Count == 0)
            return;
        try
        {
            result.Add(Strict.GetString(pending.ToArray()));
        }
        catch (DecoderFallbackException)
        {
            result.AddRange(Enumerable.Repeat("\uFFFD", pending.Count));
        }
        pending.Clear();
    }
}

/// <summary>Concatenates all tokens into one.</summary>
public sealed class FuseDecoder : IDecoder
{
    public JsonObject ToJson() => Definitions.Typed("Fuse");

    public List<string> DecodeChain(List<string> tokens) => [string.Concat(tokens)];
}

public sealed class ReplaceDecoder(ReplaceNormalizer replace) : IDecoder
{
    public JsonObject ToJson() => Definitions.Typed("Replace", ("pattern", Replace.Pattern.ToJson()), ("content", Replace.Content));

    public ReplaceNormalizer Replace { get; } = replace;

    public List<string> DecodeChain(List<string> tokens) => tokens.Select(Apply).ToList();

    private string Apply(string token)
    {
        var matches = Replace.Pattern.Matches(token);
        if (matches.Count == 0)
            return token;
        var sb = new StringBuilder(token.Length);
        var at = 0;
        foreach (var (start, end) in matches)
        {
            sb.Append(token, at, start - at).Append(Replace.Content);
            at = end;
        }
        return sb.Append(token, at, token.Length - at).ToString();
    }
}

/// <summary>Removes up to <c>start</c> leading and <c>stop</c> trailing <c>content</c> chars from every token.</summary>
public sealed class StripDecoder(char content, int start, int stop) : IDecoder
{
    public JsonObject ToJson() => Definitions.Typed("Strip", ("content", content.ToString()), ("start", start), ("stop", stop));

    public List<string> DecodeChain(List<string> tokens) => tokens.Select(token =>
    {
        var from = 0;
        while (from < Math.Min(start, token.Length) && token[from] == content)
            from++;
        var to = token.Length;
        while (token.Length - to < stop && to > from && token[to - 1] == content)
            to--;
        return token[from..to];
    }).ToList();
}

/// <summary>Original BPE (end-of-word suffix): the suffix becomes a space.</summary>
public sealed class BpeDecoder(string suffix) : IDecoder
{
    public JsonObject ToJson() => Definitions.Typed("BPEDecoder", ("suffix", suffix));

    public List<string> DecodeChain(List<string> tokens) =>
        tokens.Select((t, i) => t.Replace(suffix, i == tokens.Count - 1 ? "" : " ")).ToList();
}
