using System.Text;

namespace SharpTune.Data;

/// <summary>Checks on text inputs before they are parsed.</summary>
public static class TextFiles
{
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>Throws <see cref="InvalidDataException"/> naming the file, line and byte offset of the first byte that is
    /// not UTF-8, where readers would otherwise turn it silently into U+FFFD. Streams the file; memory stays bounded.</summary>
    public static void EnsureUtf8(string path)
    {
        var decoder = StrictUtf8.GetDecoder();
        var bytes = new byte[1 << 20];
        var chars = new char[StrictUtf8.GetMaxCharCount(bytes.Length) + 4];
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan);
        long line = 1, offset = 0;
        int read;
        do
        {
            read = stream.Read(bytes);
            try
            {
                decoder.GetChars(bytes, 0, read, chars, 0, flush: read == 0);
            }
            catch (DecoderFallbackException exception)
            {
                var at = Math.Clamp(exception.Index, 0, read);
                line += bytes.AsSpan(0, at).Count((byte)'\n');
                throw new InvalidDataException($"{path}:{line}: not valid UTF-8 (byte offset {offset + at}); save the file as UTF-8");
            }
            line += bytes.AsSpan(0, read).Count((byte)'\n');
            offset += read;
        }
        while (read > 0);
    }
}
